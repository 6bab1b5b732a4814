"""Drive JupyterLab in a real browser: start a server, run a notebook, move a widget, time the figure.

Used by ``test_jupyterlab.py`` (``make test-browser``). The browser is the system's Chromium (Debian
package ``chromium``), driven by Playwright's Python package with ``executable_path``: no browser
download, no network.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

CHROMIUM_CANDIDATES = ("/usr/bin/chromium", "/usr/bin/chromium-browser", "/usr/bin/google-chrome")
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
#: seconds JupyterLab may take to answer its status API
STARTUP_TIMEOUT_S = 120
#: seconds one notebook may take to run all its cells in the browser (the slowest takes ~40 s on 2 cores)
RUN_TIMEOUT_S = 600
#: times "Run All" is asked again when a run stopped with unqueued cells and no error shown
RUN_ALL_REISSUES = 2
#: seconds a widget figure may take to change after a control moved
FIGURE_TIMEOUT_S = 60
PANEL = ".nmc-explore"

# JupyterLab settings for the test: every cell in the DOM (no windowing), no news/update checks.
LAB_SETTINGS = {
    "@jupyterlab/notebook-extension/tracker.jupyterlab-settings": {
        "windowingMode": "none",
        "autoStartDefaultKernel": True,
    },
    "@jupyterlab/apputils-extension/notification.jupyterlab-settings": {
        "fetchNews": "false",
        "checkForUpdates": False,
    },
}


def chromium_path() -> str | None:
    """The system Chromium (``NMC_CHROMIUM`` overrides), or ``None``."""
    override = os.environ.get("NMC_CHROMIUM")
    if override:
        return override
    return next((p for p in CHROMIUM_CANDIDATES if Path(p).exists()), None)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class LabServer:
    """JupyterLab of this Python environment on 127.0.0.1, serving ``root``; a context manager."""

    def __init__(self, root: Path, env: dict | None = None):
        self.root = Path(root)
        self.port = free_port()
        self.token = secrets.token_hex(16)
        self.base = f"http://127.0.0.1:{self.port}"
        self.extra_env = env or {}
        self.process = None

    def __enter__(self):
        state = Path(tempfile.mkdtemp(prefix="nmc-lab-state-"))
        self._state = state
        settings = state / "settings"
        for name, value in LAB_SETTINGS.items():
            path = settings / name
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(json.dumps(value))
        env = {
            **os.environ,
            **self.extra_env,
            "JUPYTERLAB_SETTINGS_DIR": str(settings),
            "JUPYTERLAB_WORKSPACES_DIR": str(state / "workspaces"),
            "JUPYTER_RUNTIME_DIR": str(state / "rt"),
        }
        command = [
            sys.executable,
            "-m",
            "jupyter",
            "lab",
            "--no-browser",
            "--ServerApp.ip=127.0.0.1",
            f"--ServerApp.port={self.port}",
            "--ServerApp.port_retries=0",
            f"--IdentityProvider.token={self.token}",
            f"--ServerApp.root_dir={self.root}",
            "--LabApp.news_url=None",
            "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate",
        ]
        if hasattr(os, "geteuid") and os.geteuid() == 0:
            command.append("--allow-root")  # CI containers run as root
        self._log = open(state / "lab.log", "w")  # noqa: SIM115 (closed in __exit__)
        self.process = subprocess.Popen(command, env=env, stdout=self._log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + STARTUP_TIMEOUT_S
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"JupyterLab exited with {self.process.returncode}:\n{self.log_tail()}")
            try:
                self.api("status")
                return self
            except OSError:
                time.sleep(0.5)
        self.__exit__(None, None, None)
        raise TimeoutError(f"JupyterLab did not answer within {STARTUP_TIMEOUT_S} s:\n{self.log_tail()}")

    def api(self, path: str):
        with urllib.request.urlopen(f"{self.base}/api/{path}?token={self.token}", timeout=10) as reply:
            return json.loads(reply.read())

    def shut_down_kernels(self) -> None:
        """End every kernel session (each notebook's kernel would otherwise keep its memory and CPU)."""
        for session in self.api("sessions"):
            request = urllib.request.Request(
                f"{self.base}/api/sessions/{session['id']}?token={self.token}", method="DELETE"
            )
            urllib.request.urlopen(request, timeout=30).close()

    def log_tail(self, n: int = 40) -> str:
        self._log.flush()
        return "\n".join((self._state / "lab.log").read_text().splitlines()[-n:])

    def url(self, notebook: str) -> str:
        return f"{self.base}/lab/tree/{notebook}?token={self.token}&reset"

    def __exit__(self, *exc):
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self._log.close()
        shutil.rmtree(self._state, ignore_errors=True)


@dataclass
class NotebookRun:
    """What happened to one notebook in the browser."""

    name: str
    run_s: float = float("nan")
    problems: list[str] = field(default_factory=list)
    figure_change_s: float = float("nan")
    control: str = ""
    views_3d: int = 0
    view3d_s: float = float("nan")
    prompts: list[str] = field(default_factory=list)
    reloaded_for_widgets: bool = False  # the page was reloaded once before the panel appeared


def _prompts(page) -> list[str]:
    return page.eval_on_selector_all(".jp-CodeCell .jp-InputPrompt", "els => els.map(e => e.textContent)")


def _dialog_text(page) -> str:
    dialogs = page.locator(".jp-Dialog")
    return dialogs.first.inner_text() if dialogs.count() else ""


def accept_kernel_dialog(page, wait_s: float = 5.0) -> None:
    """Accept the "Select Kernel" dialog (the notebook's own python3 is preselected) if it comes."""
    deadline = time.monotonic() + wait_s
    while time.monotonic() < deadline:
        if "Select Kernel" in _dialog_text(page):
            page.locator(".jp-Dialog .jp-mod-accept").first.click()
            return
        if page.locator(".jp-Notebook-ExecutionIndicator[data-status='idle']").count():
            return
        time.sleep(0.2)


def run_all_cells(page, server: LabServer, name: str, record: NotebookRun) -> None:
    """Open ``name``, run every cell, save it; append problems (kernel death, timeouts) to ``record``."""
    page.goto(server.url(name))
    page.wait_for_selector(".jp-Notebook .jp-CodeCell", timeout=STARTUP_TIMEOUT_S * 1000)
    accept_kernel_dialog(page)
    page.wait_for_selector(
        ".jp-Notebook-ExecutionIndicator[data-status='idle']", timeout=STARTUP_TIMEOUT_S * 1000
    )
    start = time.perf_counter()
    seen_busy, running, asked = False, None, -1e9
    reissued = 0
    quiet = time.perf_counter()
    while True:
        if not seen_busy and time.perf_counter() - asked > 5:  # the command is inert until the kernel is up
            page.keyboard.press("Escape")
            page.locator(".lm-MenuBar-itemLabel", has_text="Run").first.click()
            page.locator(".lm-Menu-itemLabel", has_text="Run All Cells").first.click()
            asked = time.perf_counter()
        prompts = _prompts(page)
        busy = [i for i, p in enumerate(prompts) if "*" in p]
        seen_busy |= bool(busy)
        running = busy[0] + 1 if busy else running  # 1-based, as in the saved-notebook check
        dialog = _dialog_text(page)
        if "Select Kernel" in dialog:  # asked when the kernel was not started on opening
            page.locator(".jp-Dialog .jp-mod-accept").first.click()
            continue
        if "died" in dialog or "Restarting" in dialog:
            record.problems.append(
                f"{name}: the kernel died while running code cell {running}: {dialog.strip()}"
            )
            return
        idle = page.locator(".jp-Notebook-ExecutionIndicator[data-status='idle']").count() > 0
        if seen_busy and not busy and idle:
            if all(p.strip("[]: ").isdigit() for p in prompts):
                break  # every cell ran
            if time.perf_counter() - quiet > 3:
                if reissued < RUN_ALL_REISSUES and not _error_shown(page):
                    # stopped with cells never queued and no error shown: on a loaded machine the first
                    # "Run All" can reach a kernel that is still settling; ask again (re-running is harmless)
                    reissued += 1
                    seen_busy, asked = False, -1e9
                    quiet = time.perf_counter()
                    continue
                break  # it stopped (an error) and stayed stopped for 3 s
        else:
            quiet = time.perf_counter()
        if not seen_busy and time.perf_counter() - start > STARTUP_TIMEOUT_S:
            record.problems.append(f"{name}: no cell ran within {STARTUP_TIMEOUT_S} s ({dialog!r})")
            return
        if time.perf_counter() - start > RUN_TIMEOUT_S:
            record.problems.append(f"{name}: still running code cell {running} after {RUN_TIMEOUT_S} s")
            return
        time.sleep(0.25)
    record.run_s = time.perf_counter() - start
    record.prompts = prompts
    page.keyboard.press("Control+s")


def _error_shown(page) -> bool:
    """True when a cell of the open notebook shows an error output (rendered as stderr with its name)."""
    stderr = page.locator(".jp-OutputArea-output[data-mime-type='application/vnd.jupyter.stderr']")
    return stderr.filter(has_text="Error").count() > 0


def _read_saved(path: Path, deadline: float) -> dict:
    """The saved notebook as JSON; retried while JupyterLab is still writing it (partial file)."""
    while True:
        try:
            return json.loads(path.read_text())
        except json.JSONDecodeError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)


def errors_in_saved_notebook(path: Path, saved_after: float) -> list[str]:
    """Error outputs and unexecuted code cells of the notebook saved by the browser, by cell."""
    deadline = time.monotonic() + 30
    while path.stat().st_mtime < saved_after and time.monotonic() < deadline:
        time.sleep(0.2)
    if path.stat().st_mtime < saved_after:
        return [f"{path.name}: JupyterLab did not save the notebook (cannot read its outputs)"]
    nb = _read_saved(path, time.monotonic() + 30)
    problems = []
    code = [c for c in nb["cells"] if c["cell_type"] == "code"]
    for number, cell in enumerate(code, start=1):
        first_line = "".join(cell["source"]).strip().splitlines()[0] if cell["source"] else ""
        where = f"{path.name} code cell {number} ({first_line[:60]!r})"
        for out in cell.get("outputs", []):
            if out["output_type"] == "error":
                problems.append(f"{where}: {out['ename']}: {out['evalue']}")
        if cell.get("execution_count") is None and not problems:
            problems.append(f"{where}: did not run")
    return problems


_CANVAS_JS = "el => { const c = el.querySelector('canvas'); return c ? c.toDataURL() : null; }"


def wait_for_steady_figure(panel, steady_s: float = 1.0) -> str | None:
    """The panel's canvas image once it has stopped changing for ``steady_s`` (ipympl draws lazily)."""
    deadline = time.monotonic() + FIGURE_TIMEOUT_S
    last, since = panel.evaluate(_CANVAS_JS), time.monotonic()
    while time.monotonic() < deadline:
        time.sleep(0.1)
        now = panel.evaluate(_CANVAS_JS)
        if now != last:
            last, since = now, time.monotonic()
        elif now is not None and time.monotonic() - since >= steady_s:
            break
    return last


def _widget_output_text(page) -> str:
    """Text of widget outputs shown in place of a view ("Loading widget...", an error, a repr)."""
    texts = page.locator(".jp-OutputArea-output").filter(
        has_text=re.compile(r"Loading widget|Error displaying widget|Explorer\(|HBox\(|VBox\(")
    ).all_inner_texts()
    return " | ".join(t.strip()[:120] for t in texts[:3])


def move_first_control(page, record: NotebookRun) -> None:
    """Move the first control of the notebook's first Explore panel; time the figure's change."""
    panel = page.locator(PANEL).first
    try:  # widget views render after the kernel's messages arrive: give them time on a loaded machine
        page.wait_for_selector(PANEL, state="attached", timeout=FIGURE_TIMEOUT_S * 1000)
    except Exception:  # playwright's TimeoutError
        pass
    if page.locator(PANEL).count() == 0:
        # Seen once, on the first notebook of a run on a loaded 2-core machine: every cell ran but the
        # panel's view was never built (the widget output rendered before the widget extension was
        # ready). A reload rebuilds the views from the kernel's live widget models.
        fallback = _widget_output_text(page)
        page.keyboard.press("Control+s")
        page.once("dialog", lambda dialog: dialog.accept())  # "leave the page?" if still unsaved
        page.reload()
        accept_kernel_dialog(page)
        try:
            page.wait_for_selector(PANEL, state="attached", timeout=FIGURE_TIMEOUT_S * 1000)
        except Exception:  # playwright's TimeoutError
            pass
        if page.locator(PANEL).count() == 0:
            shown = f" (its output showed {fallback!r}, and again after a reload)" if fallback else ""
            record.problems.append(f"{record.name}: no Explore panel ({PANEL}) in the page{shown}")
            return
        record.reloaded_for_widgets = True
        panel = page.locator(PANEL).first
    panel.scroll_into_view_if_needed()
    before = wait_for_steady_figure(panel)
    first = (
        panel.locator(".widget-vbox")
        .first.locator(
            ".widget-inline-hbox, .widget-hslider, .widget-dropdown,"
            " .widget-select-multiple, .widget-checkbox"
        )
        .first
    )
    start = time.perf_counter()
    if first.locator(".noUi-handle").count():
        handle = first.locator(".noUi-handle").first
        handle.focus()
        handle.press("ArrowRight")
        record.control = "slider"
    elif first.locator("select").count():
        select = first.locator("select").first
        options = select.locator("option").all_inner_texts()
        current = select.evaluate("s => [...s.selectedOptions].map(o => o.text)")
        choice = next(o for o in options if o not in current)
        if select.get_attribute("multiple") is not None:
            select.select_option(label=[*current[1:], choice] if len(current) > 1 else [choice])
        else:
            select.select_option(label=choice)
        record.control = "select"
    elif first.locator("input[type=checkbox]").count():
        first.locator("input[type=checkbox]").first.click()
        record.control = "checkbox"
    else:
        record.problems.append(f"{record.name}: the panel's first control is of no known kind")
        return
    try:
        page.wait_for_function(
            "([sel, old]) => { const c = document.querySelector(sel + ' canvas');"
            " return c && c.toDataURL() !== old; }",
            arg=[PANEL, before],
            polling=20,
            timeout=FIGURE_TIMEOUT_S * 1000,
        )
    except Exception:  # playwright's TimeoutError
        record.problems.append(
            f"{record.name}: the figure did not change within {FIGURE_TIMEOUT_S} s "
            f"after moving the first control ({record.control})"
        )
        return
    record.figure_change_s = time.perf_counter() - start
    wait_for_steady_figure(panel)
    error = page.locator(f"{PANEL} .nmc-explore-error").first.inner_text().strip()
    if error:
        record.problems.append(f"{record.name}: the widget's draw raised after the move: {error}")


VIEW3D = ".nmc-view3d"


def _rendered(locator) -> bool:
    """Whether an element's pixels are not all one colour (a WebGL canvas has drawn something)."""
    from io import BytesIO

    from PIL import Image

    try:
        image = Image.open(BytesIO(locator.screenshot(timeout=5000))).convert("L")
    except Exception:  # not attached or not visible yet
        return False
    low, high = image.getextrema()
    return high - low > 30


def time_3d_view(page, record: NotebookRun) -> None:
    """Re-run the notebook's first 3-D view cell; time until its k3d canvas shows the particles."""
    cell = page.locator(".jp-CodeCell", has=page.locator(VIEW3D)).first
    if page.locator(VIEW3D).count() == 0:
        return
    record.views_3d = page.locator(VIEW3D).count()
    cell.scroll_into_view_if_needed()
    cell.locator(".jp-InputArea-editor").first.click()
    start = time.perf_counter()
    page.keyboard.press("Control+Enter")
    time.sleep(0.3)  # the old output is cleared first
    deadline = time.monotonic() + FIGURE_TIMEOUT_S
    while time.monotonic() < deadline:
        canvas = cell.locator(f"{VIEW3D} canvas")
        if canvas.count() and _rendered(canvas.first):
            record.view3d_s = time.perf_counter() - start
            return
        time.sleep(0.1)
    record.problems.append(f"{record.name}: the 3-D view drew nothing within {FIGURE_TIMEOUT_S} s (WebGL?)")


def save_panel_screenshot(page, path: Path, max_width: int = 900) -> None:
    """A small PNG of the first panel (controls and figure), for the README."""
    from io import BytesIO

    from PIL import Image

    image = Image.open(BytesIO(page.locator(PANEL).first.screenshot()))
    if image.width > max_width:
        image = image.resize((max_width, round(image.height * max_width / image.width)), Image.LANCZOS)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp.png")
    image.convert("RGB").quantize(colors=128).save(tmp, optimize=True)
    tmp.replace(path)
