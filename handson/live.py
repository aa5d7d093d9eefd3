"""Views that refresh themselves in place for a while: a log group followed as it grows
(``logs.follow``), a service watched while it deploys (``ecs.watch_service``).

A ``Watch`` polls from a thread of its own, so the notebook stays free while it runs and
its Stop button is heard (a cell that blocked would hold the click until it ended). In a
notebook it shows as a widget: a status line, the Stop button and the latest text; a saved
notebook, where widgets don't run, keeps a line saying what the cell showed live. Outside a
notebook it runs in the foreground and prints what is new, until its time is up or Ctrl-C.
"""

from __future__ import annotations

import html
import threading
import time
from collections.abc import Callable
from typing import Any

from handson.exceptions import ConfigurationError
from handson.i18n import _
from handson.progress import in_notebook

Poll = Callable[[], str]
KEEP_LINES = 500  # an appending view keeps its newest lines


class Watch:
    """``poll`` called every ``interval`` seconds for ``seconds``, its text shown in place:
    each call's text replaces the last, or with ``append`` is added below it.

    ``stop()`` (or the Stop button) ends it sooner, ``wait()`` blocks until it has ended;
    ``text`` is what it shows, ``status`` its state line and ``error`` what ended it if a
    poll failed.
    """

    def __init__(
        self, title: str, poll: Poll, *, seconds: float, interval: float, append: bool = False
    ) -> None:
        if not seconds > 0 or not interval > 0:
            raise ConfigurationError(
                _("seconds={seconds!r}, interval={interval!r}: both must be more than 0.").format(
                    seconds=seconds, interval=interval
                )
            )
        self.title = title
        self.text = ""
        self.status = _("{title}: starting").format(title=title)
        self.error: Exception | None = None
        self._poll = poll
        self._seconds = seconds
        self._interval = interval
        self._append = append
        self._stopped = threading.Event()
        self._ended = threading.Event()
        self._thread: threading.Thread | None = None
        self._widgets: tuple[Any, Any, Any] | None = None  # status label, Stop button, text

    def start(self) -> Watch:
        """Start polling in a thread of its own (once); returns the watch."""
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name=self.title, daemon=True)
            self._thread.start()
        return self

    def stop(self) -> None:
        """End the watch at its next moment (what the Stop button does)."""
        self._stopped.set()

    def wait(self, timeout: float | None = None) -> bool:
        """Block until the watch has ended (at most ``timeout`` seconds); whether it has."""
        return self._ended.wait(timeout)

    def _run(self) -> None:
        started = time.monotonic()
        try:
            while not self._stopped.is_set():
                self._add(self._poll())
                left = self._seconds - (time.monotonic() - started)
                if left <= 0:
                    break
                self._show(
                    _("{title}: live, {left:.0f} s left").format(title=self.title, left=left)
                )
                self._stopped.wait(min(self._interval, left))
        except Exception as error:  # noqa: BLE001 (shown, and kept for the caller)
            self.error = error
            self._show(
                _("{title}: stopped by an error: {error}").format(title=self.title, error=error)
            )
        else:
            if self._stopped.is_set():
                ended = _("{title}: stopped after {seconds:.0f} s")
            else:
                ended = _("{title}: ended after {seconds:.0f} s")
            self._show(ended.format(title=self.title, seconds=time.monotonic() - started))
        finally:
            self._ended.set()
            if self._widgets is not None:
                self._widgets[1].disabled = True

    def _add(self, text: str) -> None:
        if self._append:
            if text:
                lines = (self.text + "\n" + text if self.text else text).splitlines()
                self.text = "\n".join(lines[-KEEP_LINES:])
                if self._widgets is None:
                    print(text, flush=True)
        elif text != self.text:
            self.text = text
            if self._widgets is None:
                print(text, end="\n\n", flush=True)

    def _show(self, status: str) -> None:
        self.status = status
        if self._widgets is not None:
            label, _button, body = self._widgets
            label.value = status
            body.value = f"<pre style='white-space: pre-wrap'>{html.escape(self.text)}</pre>"

    def widget(self) -> Any:
        """The ipywidgets box that shows the watch (made on first use)."""
        import ipywidgets

        if self._widgets is None:
            button = ipywidgets.Button(description=_("Stop"), icon="stop")
            button.on_click(lambda _clicked: self.stop())
            self._widgets = (ipywidgets.Label(value=self.status), button, ipywidgets.HTML())
        label, button, body = self._widgets
        return ipywidgets.VBox([ipywidgets.HBox([label, button]), body])

    def _repr_mimebundle_(self, **kwargs: Any) -> dict[str, Any]:
        bundle = dict(self.widget()._repr_mimebundle_(**kwargs) or {})
        bundle["text/plain"] = _(
            "(a live view of {title} for {seconds:.0f} s, with a Stop button)"
        ).format(title=self.title, seconds=self._seconds)
        return bundle


def watch(
    title: str, poll: Poll, *, seconds: float, interval: float, append: bool = False
) -> Watch:
    """A started ``Watch``. In a notebook it returns at once, to be shown by the cell; elsewhere
    it prints what is new in the foreground until it ends (Ctrl-C ends it sooner)."""
    view = Watch(title, poll, seconds=seconds, interval=interval, append=append)
    if in_notebook():
        view.widget()
        return view.start()
    view.start()
    try:
        view.wait()
    except KeyboardInterrupt:
        view.stop()
        view.wait()
    return view
