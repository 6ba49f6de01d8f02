"""Servers listen on this machine only unless told otherwise (issue 22, item 1).

0.2.0 passed ``address=None`` to ``fo.launch_app``, and FiftyOne then binds
every interface whenever it detects a container, while the command printed a
localhost URL. (The local Ray of ``segment(workers=N)`` still listens on every
interface: Ray 2.60's ``ray.init`` has no node-address argument; left open.)
"""

import fiftyone as fo
import pytest


class _Session:
    def __init__(self, address):
        self.server_address = address

    def open_tab(self):
        pass

    def wait(self):
        pass


@pytest.fixture
def launched(monkeypatch, fo_dataset):
    calls = []

    def fake_launch(dataset, **kw):
        calls.append(kw)
        return _Session(kw["address"])

    monkeypatch.setattr(fo, "launch_app", fake_launch)
    fo_dataset.persistent = True
    return fo_dataset, calls


def test_samrs_app_binds_localhost_by_default(launched, capsys):
    from fiftyone_samrs.tools.cli import main

    ds, calls = launched
    assert main(["app", ds.name, "--remote"]) == 0
    assert calls[-1]["address"] == "localhost"
    out = capsys.readouterr().out
    assert "http://localhost:5151/" in out and "WARNING" not in out


def test_another_address_is_printed_and_warned_about(launched, capsys):
    from fiftyone_samrs.tools.cli import main

    ds, calls = launched
    assert main(["app", ds.name, "--remote", "--address", "0.0.0.0"]) == 0
    assert calls[-1]["address"] == "0.0.0.0"
    out = capsys.readouterr().out
    assert "http://0.0.0.0:5151/" in out and "WARNING: the App listens on 0.0.0.0" in out


def test_loopback_addresses():
    from fiftyone_samrs.tools.app import is_loopback

    assert is_loopback("localhost") and is_loopback("127.0.0.1") and is_loopback("::1")
    assert not is_loopback("0.0.0.0") and not is_loopback("192.168.1.4")
    assert not is_loopback("myhost")

