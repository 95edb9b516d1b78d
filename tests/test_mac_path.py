"""``mlx-persona doctor`` on macOS, with the platform calls stubbed: Metal, the recommended
working set, unified memory and system sleep."""

from __future__ import annotations

import types

from mlx_persona import doctor

PMSET = """System-wide power settings:
Currently in use:
 standby              0
 Sleep On Power Button 1
 hibernatefile        /var/vm/sleepimage
 powernap             1
 disksleep            10
 sleep                {sleep} (sleep prevented by caffeinate)
 displaysleep         10
"""
INFO = {"max_recommended_working_set_size": 11453251584, "memory_size": 17179869184, "architecture": "applegpu_g16p"}


def by_name(checks):
    return {c.name: c for c in checks}


def test_sleep_minutes_reads_the_system_sleep_line_only():
    assert doctor.sleep_minutes(PMSET.format(sleep=1)) == 1
    assert doctor.sleep_minutes(PMSET.format(sleep=0)) == 0  # disksleep / displaysleep are not it
    assert doctor.sleep_minutes("no such line") is None


def test_mac_checks_report_metal_memory_and_sleep():
    c = by_name(doctor.mac_checks(True, INFO, PMSET.format(sleep=0)))
    assert c["Metal"].ok and c["Metal"].value == "available"
    assert c["recommended working set"].value.startswith("11.5 GB")
    assert c["unified memory"].value == "17.2 GB"
    assert c["sleep"].value.startswith("never")
    c = by_name(doctor.mac_checks(True, INFO, PMSET.format(sleep=10)))
    assert "after 10 min" in c["sleep"].value and "caffeinate" in c["sleep"].value


def test_mac_checks_without_metal_or_pmset():
    c = by_name(doctor.mac_checks(False, {}, None))
    assert not c["Metal"].ok and "Rosetta" in c["Metal"].fix
    assert "recommended working set" not in c and "unified memory" not in c
    assert c["sleep"].value.startswith("unknown")


def test_run_checks_on_macos_uses_the_platform_calls(monkeypatch):
    monkeypatch.setattr(doctor.sys, "platform", "darwin")
    monkeypatch.setattr(doctor, "_metal_available", lambda mx: True)
    monkeypatch.setattr(doctor, "_device_info", lambda mx: INFO)
    monkeypatch.setattr(doctor, "_pmset", lambda: PMSET.format(sleep=0))
    report = doctor.run_checks(measure=False)
    c = by_name(report.checks)
    assert c["Metal"].ok and c["sleep"].value.startswith("never") and c["unified memory"].value == "17.2 GB"
    assert "fast BLAS" not in c  # a Linux check


def test_platform_wrappers_never_raise(monkeypatch):
    broken = types.SimpleNamespace(metal=None, device_info=lambda: 1 / 0)
    assert doctor._metal_available(broken) is False and doctor._device_info(broken) == {}
    monkeypatch.setattr("subprocess.run", lambda *a, **k: (_ for _ in ()).throw(OSError("no pmset")))
    assert doctor._pmset() is None
