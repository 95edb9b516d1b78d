"""``mlx-persona chat``: talk to the twin in the terminal.

The story: find the model (a run folder's final twin, any MLX model folder with or without an
adapter, or ``default``), load it once, then loop — read a line (readline editing and history),
run a command or stream a reply, keep the multi-turn history and trim its oldest turns so the
prompt plus the reply always fit the context budget. Ctrl-C stops a reply mid-way and stays in
the chat; Ctrl-D (or /quit) leaves. ``--message`` answers once and exits, for scripts.
"""

from __future__ import annotations

import json
import signal
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from mlx_persona.core import layout
from mlx_persona.core.errors import PersonaError
from mlx_persona.core.layout import is_adapter_dir, is_model_dir
from mlx_persona.core.runs import run_base_model, run_persona_line, run_twin

# A run folder's twin is the model its twin stage chose (twin/twin.json); without one, the
# candidates, best first: (fused model folder, adapter folder on top of it). "base" stands for
# the run's base model.
TWIN_CANDIDATES = (
    (layout.DPO_FUSED_DIR, None),
    (layout.SFT_FUSED_DIR, layout.DPO_DIR),
    (layout.SFT_FUSED_DIR, None),
    ("base", layout.SFT_DIR),
)
MAKE_A_TWIN = "make one with `mlx-persona run recipes/quickstart.yaml`"

HELP = """commands:
  /reset           forget the conversation (keeps the system prompt)
  /system TEXT     set the system prompt (empty: none) and reset
  /temp X          sampling temperature (0 = greedy)
  /max N           most tokens per reply
  /stats           show/hide time to first token and tokens/s after each reply
  /compare [TEXT]  send TEXT (default: your last message) to the base model and the twin, side by side
  /save [FILE]     write the conversation as chat JSONL (`mlx-persona clean` reads it back)
  /help            this list
  /quit            leave (Ctrl-D works too; Ctrl-C stops a reply)"""


@dataclass
class Target:
    """What to load: a model folder, an optional adapter, and the base model for /compare."""

    model: Path
    adapter: Path | None = None
    base: str | None = None
    label: str = "twin"


def resolve_target(spec: str, adapter: Path | None = None, base: str | None = None) -> Target:
    """Turn ``RUN_DIR | MODEL`` (+ ``--adapter``) into a :class:`Target`, or a one-line error."""
    from mlx_persona.models.resolve import looks_like_hub_id, resolve_model

    p = Path(spec).expanduser()
    if p.is_dir() and not is_model_dir(p):
        run_base = base or run_base_model(p)
        chosen = run_twin(p, chosen_only=True)
        if chosen is not None:
            return Target(chosen[1], adapter, run_base, label=f"{p.name} ({chosen[1].name})")
        for model_dir, adapter_dir in TWIN_CANDIDATES:
            if adapter_dir is not None and not is_adapter_dir(p / adapter_dir):
                continue
            if model_dir == "base":
                if run_base is None:
                    continue
                model = resolve_model(run_base)
            elif is_model_dir(p / model_dir):
                model = p / model_dir
            else:
                continue
            return Target(
                model,
                p / adapter_dir if adapter_dir else adapter,
                run_base,
                label=f"{p.name} ({model_dir}{' + ' + adapter_dir if adapter_dir else ''})",
            )
        raise PersonaError(f"run {p} has no twin yet: finish it with `mlx-persona run RECIPE --name {p.name} --resume`")
    if not p.exists() and spec != "default" and not looks_like_hub_id(spec):
        raise PersonaError(f"no such run folder or model: {spec} ({MAKE_A_TWIN})")
    model = resolve_model(spec)
    if adapter is not None and not is_adapter_dir(adapter):
        raise PersonaError(f"{adapter} is not an adapter folder (needs adapters.safetensors and adapter_config.json)")
    # a plain model with an adapter compares against itself without the adapter
    return Target(model, adapter, base or (str(model) if adapter else None), label=Path(model).name)


@dataclass
class ReplyStats:
    ttft_s: float = 0.0
    tokens: int = 0
    tokens_per_s: float = 0.0
    interrupted: bool = False


@dataclass
class ChatSession:
    """A conversation with one loaded model; the base model is loaded only for /compare."""

    target: Target
    system: str | None = None
    temp: float = 0.7
    max_tokens: int = 256
    context_tokens: int = 2048  # prompt + reply budget; the oldest turns go first
    seed: int = 0
    history: list = field(default_factory=list)

    def __post_init__(self):
        from mlx_persona.models.generate import load_for_generation

        self.model, self.tokenizer = load_for_generation(self.target.model, self.target.adapter)
        self._base = None
        limit = getattr(self.tokenizer, "model_max_length", None)
        if isinstance(limit, int) and 0 < limit < self.context_tokens:
            self.context_tokens = limit

    # -- prompt building -------------------------------------------------------------------
    def messages(self, history: list | None = None) -> list:
        sys_msg = [{"role": "system", "content": self.system}] if self.system else []
        return sys_msg + list(self.history if history is None else history)

    def prompt_tokens(self, history: list, tokenizer=None) -> list[int]:
        tok = tokenizer or self.tokenizer
        return tok.apply_chat_template(self.messages(history), add_generation_prompt=True, tokenize=True)

    def trimmed(self, history: list, tokenizer=None) -> tuple[list, list[int]]:
        """Drop the oldest turns until prompt + reply fit; the newest user message always stays."""
        budget = max(self.context_tokens - self.max_tokens, 16)
        history = list(history)
        ids = self.prompt_tokens(history, tokenizer)
        while len(ids) > budget and len(history) > 1:
            history = history[2:] if len(history) > 2 else history[1:]
            ids = self.prompt_tokens(history, tokenizer)
        return history, ids

    # -- generation ------------------------------------------------------------------------
    def _generate(self, model, tokenizer, ids: list[int], on_text: Callable[[str], None]) -> tuple[str, ReplyStats]:
        import mlx.core as mx
        from mlx_lm import stream_generate
        from mlx_lm.sample_utils import make_sampler

        mx.random.seed(self.seed)
        stats, parts = ReplyStats(), []
        start = time.perf_counter()
        try:
            for resp in stream_generate(
                model, tokenizer, ids, max_tokens=self.max_tokens, sampler=make_sampler(temp=self.temp)
            ):
                if stats.tokens == 0:
                    stats.ttft_s = time.perf_counter() - start
                stats.tokens = resp.generation_tokens
                stats.tokens_per_s = resp.generation_tps
                if resp.text:
                    parts.append(resp.text)
                    on_text(resp.text)
        except KeyboardInterrupt:
            stats.interrupted = True
        return "".join(parts).strip(), stats

    def reply(self, message: str, on_text: Callable[[str], None] = lambda _t: None) -> tuple[str, ReplyStats]:
        history, ids = self.trimmed(self.history + [{"role": "user", "content": message}])
        text, stats = self._generate(self.model, self.tokenizer, ids, on_text)
        self.history = history + [{"role": "assistant", "content": text}]
        return text, stats

    def base_reply(self, message: str) -> str:
        """The base model's answer to ``message`` in the same conversation."""
        if self.target.base is None:
            raise PersonaError("no base model known for /compare: start the chat with --base MODEL")
        if self._base is None:
            from mlx_persona.models.generate import load_for_generation
            from mlx_persona.models.resolve import resolve_model

            self._base = load_for_generation(resolve_model(self.target.base))
        model, tok = self._base
        prior = self.history[:-2] if len(self.history) >= 2 else []
        _, ids = self.trimmed(prior + [{"role": "user", "content": message}], tok)
        text, _ = self._generate(model, tok, ids, lambda _t: None)
        return text

    def save(self, path: Path) -> Path:
        """Add the conversation as one chat-JSONL record (the format the cleaner reads) to ``path``;
        earlier records in the file are kept, and the file is replaced atomically."""
        from mlx_persona.core.runs import atomic_write_text

        path = Path(path)
        old = path.read_text(encoding="utf-8") if path.exists() else ""
        if old and not old.endswith("\n"):
            old += "\n"
        atomic_write_text(path, old + json.dumps({"messages": self.messages()}, ensure_ascii=False) + "\n")
        return path


# -- the interactive loop ------------------------------------------------------------------
def _setup_readline() -> None:
    try:
        import readline
    except ImportError:  # no readline on this Python: plain input() still works
        return
    from mlx_persona.core.paths import persona_home

    hist = persona_home() / "chat_history"
    try:
        hist.parent.mkdir(parents=True, exist_ok=True)
        if hist.exists():
            readline.read_history_file(str(hist))
        readline.set_history_length(1000)
        import atexit

        atexit.register(lambda: readline.write_history_file(str(hist)))
    except OSError:
        pass


def _ctrl_c_interrupts() -> None:
    """Make Ctrl-C raise KeyboardInterrupt even when we were started with SIGINT ignored (a
    shell without job control starts background commands so, and Python keeps an ignored
    SIGINT as it found it): the chat needs it to stop a reply."""
    if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
        signal.signal(signal.SIGINT, signal.default_int_handler)


def repl(session: ChatSession, console, show_stats: bool = False) -> None:
    """Read, answer, repeat, until /quit or Ctrl-D."""
    _ctrl_c_interrupts()
    _setup_readline()
    console.print(f"[bold]chatting with {session.target.label}[/] — /help for commands, Ctrl-D to leave")
    last_user: str | None = None
    while True:
        try:
            line = input("you> ")
        except EOFError:
            console.print()
            return
        except KeyboardInterrupt:
            console.print("\n[dim](Ctrl-D or /quit to leave)[/]")
            continue
        line = line.strip()
        if not line:
            continue
        if line.startswith("/"):
            cmd, _, arg = line.partition(" ")
            arg = arg.strip()
            if cmd in ("/quit", "/exit"):
                return
            if cmd == "/help":
                console.print(HELP, highlight=False)
            elif cmd == "/reset":
                session.history = []
                console.print("[dim]conversation cleared[/]")
            elif cmd == "/system":
                session.system, session.history = (arg or None), []
                console.print(f"[dim]system prompt {'set' if arg else 'removed'}; conversation cleared[/]")
            elif cmd == "/temp":
                try:
                    session.temp = max(0.0, float(arg))
                    console.print(f"[dim]temperature {session.temp}[/]")
                except ValueError:
                    console.print("[red]usage: /temp 0.7[/]")
            elif cmd == "/max":
                if arg.isdigit() and int(arg) > 0:
                    session.max_tokens = int(arg)
                    console.print(f"[dim]at most {session.max_tokens} tokens per reply[/]")
                else:
                    console.print("[red]usage: /max 256[/]")
            elif cmd == "/stats":
                show_stats = not show_stats
                console.print(f"[dim]stats {'on' if show_stats else 'off'}[/]")
            elif cmd == "/save":
                path = Path(arg) if arg else Path(f"chat-{time.strftime('%Y%m%d-%H%M%S')}.jsonl")
                console.print(f"[dim]saved to {session.save(path)}[/]")
            elif cmd == "/compare":
                if arg:  # a new message: the twin answers it as the next turn, then the base model
                    if session.target.base is None:
                        console.print("[red]no base model known for /compare: start the chat with --base MODEL[/]")
                        continue
                    try:
                        session.reply(arg)
                    except KeyboardInterrupt:
                        console.print("[dim]⏹ stopped[/]")
                        continue
                    last_user = arg
                elif last_user is None:
                    console.print("[red]send a message first, or /compare TEXT[/]")
                    continue
                _compare(session, last_user, console)
            else:
                console.print(f"[red]unknown command {cmd}[/] — /help lists them")
            continue
        last_user = line
        console.print("twin> ", end="", style="bold cyan")
        try:
            _, stats = session.reply(line, on_text=lambda t: console.print(t, end="", markup=False, highlight=False))
        except KeyboardInterrupt:  # Ctrl-C before the first token: nothing said, the chat goes on
            stats = ReplyStats(interrupted=True)
        console.print("[dim] ⏹ stopped[/]" if stats.interrupted else "")
        if show_stats:
            console.print(
                f"[dim]{stats.ttft_s * 1000:.0f} ms to first token · {stats.tokens} tokens · "
                f"{stats.tokens_per_s:.1f} tok/s[/]"
            )


def _compare(session: ChatSession, message: str, console) -> None:
    from rich.table import Table

    try:
        base = session.base_reply(message)
    except PersonaError as e:
        console.print(f"[red]{e.message}[/]")
        return
    twin = session.history[-1]["content"] if session.history else ""
    table = Table(title=f"you: {message}", show_lines=True, expand=True)
    table.add_column("base model")
    table.add_column("twin")
    table.add_row(base, twin)
    console.print(table)


import click  # noqa: E402  (kept beside the command it serves)


@click.command("chat")
@click.argument("target", required=False, default="default")
@click.option(
    "--adapter",
    type=click.Path(file_okay=False, path_type=Path),
    help="LoRA/DoRA adapter folder to apply on top of a model folder.",
)
@click.option(
    "--base",
    help="Base model for /compare (default: the run's base model, or the model itself when --adapter is given).",
)
@click.option("--system", help="System prompt (default: the run's persona line, if any).")
@click.option("--message", "-m", help="Answer this one message, print the reply and exit (for scripts).")
@click.option("--temp", type=float, default=0.7, show_default=True, help="Sampling temperature (0 = greedy).")
@click.option("--max-tokens", type=int, default=256, show_default=True, help="Most tokens per reply.")
@click.option(
    "--context",
    "context_tokens",
    type=int,
    default=2048,
    show_default=True,
    help="Token budget for prompt + reply; the oldest turns are dropped beyond it.",
)
@click.option("--seed", type=int, default=0, show_default=True, help="Sampling seed.")
@click.option("--stats", is_flag=True, help="Show time to first token and tokens/s after each reply.")
def chat_command(target, adapter, base, system, message, temp, max_tokens, context_tokens, seed, stats) -> None:
    """Talk to a twin: TARGET is a run folder (its final twin), an MLX model folder, or 'default'."""
    from rich.console import Console

    if max_tokens <= 0 or context_tokens <= 0:
        raise PersonaError("--max-tokens and --context must be positive")
    resolved = resolve_target(target, adapter, base)
    if system is None:
        system = run_persona_line(Path(target))
    session = ChatSession(
        resolved, system=system, temp=temp, max_tokens=max_tokens, context_tokens=context_tokens, seed=seed
    )
    if message is not None:
        text, st = session.reply(message)
        click.echo(text)
        if stats:
            click.echo(
                f"{st.ttft_s * 1000:.0f} ms to first token, {st.tokens} tokens, {st.tokens_per_s:.1f} tok/s", err=True
            )
        return
    repl(session, Console(), show_stats=stats)
