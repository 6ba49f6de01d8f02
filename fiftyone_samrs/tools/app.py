"""The FiftyOne App on a dataset with the SAMRS QA panel open (``samrs app``).

A dataset gets a saved workspace, ``samrs-qa`` (:data:`QA_WORKSPACE`): the
samples grid with the plugin's **SAMRS QA** panel beside it. The App opens
it at ``/datasets/<name>?workspace=samrs-qa`` (:func:`app_url`), from its
workspace menu, or with :func:`launch_app` (``samrs app DATASET``), which
also makes sure the plugin is discoverable first.
"""

from __future__ import annotations

from typing import Optional
from urllib.parse import quote

#: the name (and URL slug) of the saved workspace with the QA panel
QA_WORKSPACE = "samrs-qa"

#: the panel's name (``QAPanel.config.name`` in ``plugins/samrs/qa_panel.py``)
QA_PANEL = "samrs_qa"

DEFAULT_PORT = 5151


def qa_workspace():
    """The samples grid and the SAMRS QA panel side by side (a ``fo.Space``)."""
    import fiftyone as fo

    samples = fo.Panel(type="Samples", pinned=True)
    qa = fo.Panel(type=QA_PANEL)
    return fo.Space(
        children=[fo.Space(children=[samples], active_child=samples.component_id),
                  fo.Space(children=[qa], active_child=qa.component_id)],
        orientation="horizontal", sizes=[0.45, 0.55])


def save_qa_workspace(dataset) -> str:
    """Saves (or replaces) the ``samrs-qa`` workspace on ``dataset``; returns its name."""
    dataset.save_workspace(QA_WORKSPACE, qa_workspace(),
                           description="the samples and the SAMRS QA panel (fiftyone-samrs)",
                           color="#ff6d04", overwrite=True)
    return QA_WORKSPACE


def app_url(dataset_name: str, port: int = DEFAULT_PORT, address: str = "localhost",
            workspace: Optional[str] = QA_WORKSPACE) -> str:
    """The App's URL of a dataset, opening ``workspace`` when given."""
    url = "http://%s:%d/datasets/%s" % (address, port, quote(dataset_name, safe=""))
    return url + ("?workspace=%s" % quote(workspace) if workspace else "")


#: the address the App binds unless told otherwise (FiftyOne itself binds
#: 0.0.0.0 when it detects a container: the whole network would reach it)
DEFAULT_ADDRESS = "localhost"


def is_loopback(address: str) -> bool:
    """Whether an address is reachable only from this machine."""
    import ipaddress

    if address in ("localhost", "localhost.localdomain"):
        return True
    try:
        return ipaddress.ip_address(address).is_loopback
    except ValueError:
        return False


def launch_app(dataset_name: str, port: int = DEFAULT_PORT, address: Optional[str] = None,
               remote: bool = False, panel: bool = True, wait: bool = True):
    """Launches the App on a dataset, with the SAMRS QA panel open.

    The App binds ``localhost`` unless ``address`` says otherwise (FiftyOne's
    own default is every interface inside a container); another address is
    printed with a warning: the App serves any file the server can read.

    Args:
        dataset_name: the dataset
        port, address, remote: as ``fiftyone app launch`` (``address``
            default: ``localhost``)
        panel: open the ``samrs-qa`` workspace (saved on the dataset first)
        wait: block until the App is closed (as ``fiftyone app launch``)

    Returns:
        the :class:`fiftyone.core.session.Session`
    """
    import fiftyone as fo

    dataset = fo.load_dataset(dataset_name)
    spaces = None
    if panel:
        if not dataset.has_workspace(QA_WORKSPACE):
            save_qa_workspace(dataset)
        spaces = dataset.load_workspace(QA_WORKSPACE)
    address = address or DEFAULT_ADDRESS
    session = fo.launch_app(dataset, spaces=spaces, port=port, address=address,
                            remote=remote, auto=False)
    bound = getattr(session, "server_address", None) or address
    print("The App: %s" % app_url(dataset_name, port, bound, QA_WORKSPACE if panel else None))
    if not is_loopback(bound):
        print("[samrs] WARNING: the App listens on %s: anyone who reaches this machine's port "
              "%d can browse the dataset and read files the server can; use the default "
              "(localhost) and an SSH tunnel unless that is what you want" % (bound, port))
    if not remote:
        session.open_tab()
    if wait:
        session.wait()
    return session
