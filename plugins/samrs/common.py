"""Shared pieces of the @samrs/samrs operators: form helpers, progress, execution mode.

Nothing here knows about SAM: the operators call :mod:`fiftyone_samrs` and
this module only turns App parameters into arguments and SDK progress into
App progress.
"""

from __future__ import annotations

import math
import os
import queue
import threading
from typing import Any, Callable, Dict, Generator, Iterable, List, Optional

import fiftyone as fo
import fiftyone.operators as foo
import fiftyone.operators.types as types

#: a view with more samples than this defaults to "Schedule" (where the App
#: can schedule) and gets a "this is a long run" notice in the form
SMALL_VIEW = 50

#: the environment variable that gives the App its Schedule button (FiftyOne 1.22.1)
LEGACY_ORCHESTRATORS_ENV = "FIFTYONE_ALLOW_LEGACY_ORCHESTRATORS"

#: ``report(fraction, label)``: how SDK work hands progress to the operator
Report = Callable[[Optional[float], Optional[str]], None]


# --------------------------------------------------------------------------
# the operators' shared frame


def operator_config(name: str, label: str, description: str, icon: str,
                    **extra) -> foo.OperatorConfig:
    """The config of a @samrs/samrs operator: a dynamic generator operator
    that may run immediately or delegated; ``extra`` adds or overrides flags."""
    return foo.OperatorConfig(
        name=name, label=label, description=description, icon=icon, dynamic=True,
        execute_as_generator=True, allow_immediate_execution=True,
        allow_delegated_execution=True, **extra)


class SamrsOperator(foo.Operator):
    """Base of the operators: the execution options, the generator ``execute``
    (the body is ``_execute``) and the Markdown output titled ``title``.

    Every operator can run immediately (the App's **Execute**) and be
    delegated (**Schedule**, where the App offers it: see
    :func:`delegation_available`); see :func:`execution_options`.

    Subclasses set ``title``, ``long_running`` (True: the form always says how
    to run it in the background) and ``view_target`` (False: no target view).
    """

    title = ""
    long_running = False
    view_target = True

    def resolve_delegation(self, ctx):
        return requested_delegation(ctx)

    def resolve_execution_options(self, ctx):
        return execution_options(ctx, self._target_fn(ctx), long_running=self.long_running)

    def _target_fn(self, ctx):
        return (lambda: ctx.target_view()) if self.view_target else None

    def add_execution_notice(self, ctx, inputs, target=None) -> None:
        """The form's notice on how this operation runs (see :func:`add_execution_notice`)."""
        add_execution_notice(ctx, inputs, target=target, long_running=self.long_running)

    def execute(self, ctx):
        return execute_generator(ctx, self._execute(ctx))

    def _execute(self, ctx) -> Generator:
        raise NotImplementedError

    def resolve_output(self, ctx):
        return markdown_output(self.title)


# --------------------------------------------------------------------------
# parameters


def fill_defaults(operator, ctx, rounds: int = 3) -> None:
    """Gives absent parameters the defaults of the operator's form, as the App does.

    Programmatic callers (``execute_operator``, delegated runs) then get the
    same behaviour as the form for whatever they leave out. Dynamic forms are
    resolved again until no new default appears.
    """
    for _ in range(rounds):
        prop = operator.resolve_input(ctx)
        properties = getattr(getattr(prop, "type", None), "properties", None) or {}
        added = False
        for name, p in properties.items():
            if name not in ctx.params and getattr(p, "default", None) is not None:
                ctx.params[name] = p.default
                added = True
        if not added:
            return


def param_path(ctx, name: str) -> Optional[str]:
    """A path parameter: a ``types.File`` dict from the file explorer
    (``{"absolute_path": ...}``) or a plain string (programmatic calls)."""
    value = ctx.params.get(name)
    if isinstance(value, dict):
        value = value.get("absolute_path") or value.get("path")
    if not value:
        return None
    return os.path.abspath(os.path.expanduser(str(value).strip()))


#: environment variable naming the folder under which App forms may write or
#: delete files (exports, study outputs); default: FiftyOne's dataset folder
APP_ROOT_ENV = "SAMRS_APP_ROOT"


def app_root() -> str:
    """The folder App forms may write into: ``$SAMRS_APP_ROOT``, else
    ``fo.config.default_dataset_dir`` (absolute, links resolved)."""
    root = os.environ.get(APP_ROOT_ENV, "").strip() or fo.config.default_dataset_dir
    return os.path.realpath(os.path.abspath(os.path.expanduser(root)))


def output_path(ctx, name: str) -> Optional[str]:
    """A path parameter for something a form writes (or deletes): relative
    paths are taken under :func:`app_root`; the result must lie under it.

    Raises:
        ValueError: for a path outside the root, naming the root and how to
            change it
    """
    value = ctx.params.get(name)
    if isinstance(value, dict):
        value = value.get("absolute_path") or value.get("path")
    if not value or not str(value).strip():
        return None
    root = app_root()
    path = os.path.expanduser(str(value).strip())
    path = os.path.realpath(os.path.join(root, path))
    if not (path == root or path.startswith(root.rstrip(os.sep) + os.sep)):
        raise ValueError(
            "%s is outside %s: the App writes (and, with Overwrite, removes) files only under "
            "that folder; choose a folder there, or start the App with %s=<folder> to allow "
            "another" % (path, root, APP_ROOT_ENV))
    return path


def param_str(ctx, name: str, default: Optional[str] = None) -> Optional[str]:
    """A string parameter, stripped; empty -> ``default``."""
    value = ctx.params.get(name)
    if value is None:
        return default
    value = str(value).strip()
    return value or default


def param_list(ctx, name: str) -> Optional[List[str]]:
    """A list parameter given as a list or as a comma-separated string; empty -> None."""
    value = ctx.params.get(name)
    if value is None:
        return None
    if isinstance(value, str):
        value = value.split(",")
    items = [str(v).strip() for v in value if str(v).strip()]
    return items or None


# --------------------------------------------------------------------------
# form helpers


def label_fields(sample_collection, *doc_types) -> List[str]:
    """Names of the label fields of ``sample_collection`` holding one of ``doc_types``."""
    if sample_collection is None:
        return []
    names: List[str] = []
    for doc_type in doc_types:
        schema = sample_collection.get_field_schema(embedded_doc_type=doc_type)
        names.extend(n for n in schema if n not in names)
    return sorted(names)


def field_choice(inputs, name: str, choices: List[str], default: Optional[str], label: str,
                 description: str, required: bool = True, none_label: Optional[str] = None):
    """A dropdown over ``choices``; ``none_label`` adds an empty choice ("" = none).

    When a required field has no choice at all, the property is shown invalid
    with a message instead of an empty dropdown.
    """
    dropdown = types.DropdownView()
    values = list(choices)
    if none_label is not None:
        dropdown.add_choice("", label=none_label)
        values = [""] + values
    for c in choices:
        dropdown.add_choice(c, label=c)
    if default not in values:
        default = values[0] if values and (required or none_label is None) else (
            "" if none_label is not None else None)
    # not "required" for the schema: the App fills the default, programmatic
    # callers may omit it (execute() falls back to the same default)
    prop = inputs.enum(name, values or [""], default=default, required=False, label=label,
                       description=description, view=dropdown)
    if required and not choices:
        prop.invalid = True
        prop.error_message = "this dataset has no suitable field: %s" % description
    return prop


def folder_input(ctx, inputs, name: str, label: str, description: str,
                 required: bool = True):
    """A folder chosen with the App's file explorer (a ``types.File`` value).

    Programmatic callers may pass a plain path string instead; the property is
    then a string so that FiftyOne's validation accepts it.
    """
    if isinstance(ctx.params.get(name), str):
        return inputs.str(name, required=required, label=label, description=description)
    return inputs.file(name, required=required, label=label, description=description,
                       view=types.FileExplorerView(choose_dir=True,
                                                   button_label="Choose a folder..."))


def delegation_available() -> bool:
    """Whether the App can schedule (delegate) an operation.

    FiftyOne 1.22.1 (open source) has no orchestrator registry, so its App
    offers no Schedule button (and an operator that allows only delegation
    shows "Background compute is not yet configured" and Close), unless the
    App runs with ``allow_legacy_orchestrators``
    (``FIFTYONE_ALLOW_LEGACY_ORCHESTRATORS=true``). Scheduled operations then
    wait in the database for a worker (``fiftyone delegated launch``).
    Programmatic callers can always queue (``request_delegation=True``).
    """
    return bool(getattr(fo.config, "allow_legacy_orchestrators", False))


def requested_delegation(ctx) -> Optional[bool]:
    """A programmatic caller's ``delegate`` parameter (True / False), else
    None: the App's choice (Execute or Schedule) decides."""
    value = ctx.params.get("delegate")
    if value is None or value == "":
        return None
    return bool(value)


def _count(target_fn: Optional[Callable[[], Any]]) -> Optional[int]:
    if target_fn is None:
        return None
    try:
        return target_fn().count()
    except Exception:
        return None


def execution_options(ctx, target_fn: Optional[Callable[[], Any]] = None,
                      long_running: bool = False):
    """The execution options of a @samrs/samrs operator.

    Immediate execution is always allowed, so the App's **Execute** runs the
    operation whatever FiftyOne's delegation set-up. Delegation is allowed
    too (**Schedule** where the App offers it, ``request_delegation=True``
    for programmatic callers); where the App can schedule, it is the default
    choice for long-running operations (Run SAM, the prompt study) and for
    views of more than :data:`SMALL_VIEW` samples. A ``delegate`` parameter
    (programmatic callers) forces one or the other.
    """
    forced = requested_delegation(ctx)
    if forced is not None:
        return foo.ExecutionOptions(allow_immediate_execution=not forced,
                                    allow_delegated_execution=forced)
    prefer = False
    if delegation_available():
        n = _count(target_fn)
        prefer = long_running or (n is not None and n > SMALL_VIEW)
    return foo.ExecutionOptions(allow_immediate_execution=True, allow_delegated_execution=True,
                                default_choice_to_delegated=prefer)


def waiting_operations(min_age_s: float = 60.0) -> List[Any]:
    """Scheduled operations queued for more than ``min_age_s`` seconds (a
    sign that no ``fiftyone delegated launch`` worker is running)."""
    from datetime import datetime, timedelta

    try:
        from fiftyone.operators.delegated import DelegatedOperationService
        from fiftyone.operators.executor import ExecutionRunState

        queued = DelegatedOperationService().list_operations(
            run_state=ExecutionRunState.QUEUED)
    except Exception:
        return []
    cutoff = datetime.utcnow() - timedelta(seconds=min_age_s)
    return [op for op in queued
            if getattr(op, "queued_at", None) is not None and op.queued_at < cutoff]


#: what the form says when the App cannot schedule
HOW_TO_SCHEDULE = (
    "To run it in the background instead, start the App with %s=true (then its Schedule "
    "button appears beside Execute) and a worker with `fiftyone delegated launch` on the "
    "machine that should do the work (same database and plugins dir as the App; see "
    "docs/plugin.md)." % LEGACY_ORCHESTRATORS_ENV)


def execution_notice(n: Optional[int], long_running: bool = False) -> Optional[str]:
    """The text of the form's execution notice, or None when there is nothing to say.

    Args:
        n: the number of target samples, if known
        long_running: the operation may take long even on a small view
    """
    large = n is not None and n > SMALL_VIEW
    what = "%d samples" % n if n is not None else "this operation"
    if delegation_available():
        if not (large or long_running):
            return None
        text = ("%s: Schedule (the default here) queues it for a `fiftyone delegated "
                "launch` worker (same database and plugins dir as the App); Execute (beside "
                "Schedule) runs it now in the App." % (what[0].upper() + what[1:]))
        waiting = waiting_operations()
        if waiting:
            text += (" %d scheduled operation%s waiting for more than a minute: is a worker "
                     "running?" % (len(waiting), " is" if len(waiting) == 1 else "s are"))
        return text
    if not (large or long_running):
        return None
    return ("Execute runs %s now, in the App (progress is shown; keep the App open). %s"
            % (what, HOW_TO_SCHEDULE))


def add_execution_notice(ctx, inputs, target=None, long_running: bool = False) -> None:
    """Adds the form's notice on how the operation runs (at the top of the
    form, after the target): nothing for a short run, else how to run it now
    and how to run it in the background."""
    n = None
    if target is not None:
        try:
            n = target.count()
        except Exception:
            n = None
    text = execution_notice(n, long_running=long_running)
    if text:
        inputs.view("execution_notice", types.Notice(label=text))


# --------------------------------------------------------------------------
# progress


def progress_message(ctx, fraction: Optional[float], label: Optional[str]):
    """Reports progress: recorded on the delegated run, or returned as an App
    message that a generator operator must ``yield`` (None when delegated)."""
    if fraction is not None:
        fraction = float(min(max(fraction, 0.0), 1.0))
    if ctx.delegated:
        ctx.set_progress(progress=fraction, label=label)
        return None
    return ctx.ops.set_progress(label=label, progress=fraction)


def run_with_progress(ctx, fn: Callable[[Report], Any], poll: float = 0.5) -> Generator:
    """Runs ``fn(report)`` in a worker thread and relays its progress.

    ``fn`` calls ``report(fraction, label)`` as it goes (from any thread).
    Use as ``result = yield from run_with_progress(ctx, fn)`` inside a
    generator ``execute``: progress reaches the App while the work runs
    (immediate execution) or is recorded on the delegated operation.

    If the App goes away mid-run (the generator is closed), the worker
    thread finishes its current SDK call on its own; nothing is lost, since
    the SDK writes results as it goes.

    Returns:
        what ``fn`` returned

    Raises:
        the exception ``fn`` raised
    """
    events: "queue.Queue" = queue.Queue()
    outcome: Dict[str, Any] = {}

    def report(fraction: Optional[float] = None, label: Optional[str] = None) -> None:
        events.put((fraction, label))

    def work():
        try:
            outcome["result"] = fn(report)
        except BaseException as e:
            outcome["error"] = e
        finally:
            events.put(None)

    thread = threading.Thread(target=work, name="samrs-operator", daemon=True)
    thread.start()
    while True:
        try:
            event = events.get(timeout=poll)
        except queue.Empty:
            if not thread.is_alive() and events.empty():
                break
            continue
        if event is None:
            break
        message = progress_message(ctx, *event)
        if message is not None:
            yield message
    thread.join()
    if "error" in outcome:
        raise outcome["error"]
    return outcome.get("result")


def fiftyone_progress(report: Report, start: float = 0.0, end: float = 1.0,
                      label: str = "") -> Callable:
    """A FiftyOne ``progress=`` callback (``fo.report_progress``) mapping a
    :class:`fiftyone.core.utils.ProgressBar` onto ``[start, end]`` of ``report``."""

    def callback(pb):
        total = getattr(pb, "total", None)
        done = getattr(pb, "iteration", None)
        if total:
            frac = start + (end - start) * min(done / float(total), 1.0)
            report(frac, "%s %d/%d" % (label, done, total) if label else None)

    return fo.report_progress(callback, dt=1.0)


def open_saved_view(ctx, name: str):
    """An App message loading the saved view ``name``.

    The view's stages are sent rather than its name: a view saved during this
    operation is not yet in the App's list of saved views, and loading it by
    name would fail there.
    """
    return ctx.ops.set_view(view=ctx.dataset.load_saved_view(name))


def markdown_output(title: str):
    """The output schema of the operators: one Markdown summary."""
    outputs = types.Object()
    outputs.str("summary", label=title, view=types.MarkdownView())
    return types.Property(outputs)


def finish(ctx, title: str, summary: str, label: str, triggers=()) -> Generator:
    """The last messages of an operator: progress 1.0 with ``label``, then (in
    the App) the ``triggers`` (reload, set view...) and the Markdown ``summary``.

    Use as ``return (yield from finish(...))`` at the end of an operator's
    generator body; returns ``{"summary": summary}``.
    """
    message = progress_message(ctx, 1.0, label)
    if message is not None:
        yield message
    results = {"summary": summary}
    if ctx.delegated:
        return results
    for trigger in triggers:
        yield trigger
    yield ctx.ops.show_output(markdown_output(title).to_json(), results)
    return results


def execute_generator(ctx, generator):
    """What an operator's ``execute`` returns for its generator body.

    In the App (immediate execution) the generator itself, whose messages
    FiftyOne streams to the browser. Delegated: the generator is run here and
    its return value (``{"summary": ...}``) is returned, so FiftyOne stores it
    as the result of the delegated operation.
    """
    if not ctx.delegated:
        return _reporting_errors(ctx, generator)
    while True:
        try:
            next(generator)
        except StopIteration as stop:
            return stop.value


def _reporting_errors(ctx, generator) -> Generator:
    """Runs an operator's generator in the App; on an exception, shows it
    (notification + the output panel) before raising it, so the App does not
    just stop at its last progress message."""
    try:
        return (yield from generator)
    except Exception as e:
        message = "%s: %s" % (type(e).__name__, e)
        yield ctx.ops.notify(message, variant="error")
        yield ctx.ops.show_output(markdown_output("Error").to_json(),
                                  {"summary": "**The operation failed.**\n\n```\n%s\n```"
                                              % message})
        raise


def markdown_lines(headline: str, lines: Iterable[str]) -> str:
    """A bold headline and one bullet per line: Markdown joins plain lines
    into one paragraph, so summaries of several lines use this."""
    items = ["- %s" % line.strip() for line in lines if line.strip()]
    return "**%s**%s" % (headline, ("\n\n" + "\n".join(items)) if items else "")


def markdown_table(header: Iterable[str], rows: Iterable[Iterable[Any]]) -> str:
    """A Markdown table; floats get 4 decimals, None/NaN a dash."""

    def cell(v):
        if v is None or (isinstance(v, float) and math.isnan(v)):
            return "-"
        if isinstance(v, float):
            return "%.4f" % v
        return str(v)

    header = list(header)
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in rows]
    return "\n".join(lines)
