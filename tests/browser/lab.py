"""JupyterLab on 127.0.0.1 driven by headless Chromium (Playwright), isolated in one temporary folder.

``lab_session(folder, root, chromium)`` starts the server (serving ``root``) and the browser with HOME,
the XDG folders, the Jupyter folders and TMPDIR all inside ``folder``, and stops every process it
started by id on exit, also after a failure. ``Lab.open(notebook)`` opens a notebook in its own page and returns a
``NotebookPage`` that runs all cells from the Run menu and checks an explorer the way a person would.
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
import time
import urllib.request
from contextlib import contextmanager
from pathlib import Path

import psutil

WIDGET_MANAGER = "@jupyter-widgets/jupyterlab-manager"
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync",
                  "--disable-crash-reporter", "--disable-breakpad", "--disable-dev-shm-usage"]
LAB_SETTINGS = {  # no news pop-up over the notebook; every cell in the DOM, not only the visible ones
    "@jupyterlab/apputils-extension/notification": {"fetchNews": "false", "checkForUpdates": False},
    "@jupyterlab/notebook-extension/tracker": {"windowingMode": "none"},
}
SERVER_START_S, KERNEL_START_S, RUN_ALL_S, WIDGET_S, PICTURE_S = 120, 120, 600, 60, 180


def find_chromium() -> str | None:
    """``$CHROMIUM`` if set, else Debian's ``chromium`` on PATH; None when that is no executable."""
    return shutil.which(os.environ.get("CHROMIUM") or "chromium")


def unavailable(reason: str, what: str):
    """Skip on a learner's machine; fail in CI, where ``what`` must run."""
    import pytest

    if os.environ.get("CI", "").lower() not in ("", "0", "false"):
        pytest.fail(f"{reason} (CI is set, so {what} must run)")
    pytest.skip(reason)


def require_chromium(what: str) -> str:
    """The Chromium that Playwright will drive, or :func:`unavailable` with what is missing."""
    try:
        import playwright  # noqa: F401
    except ImportError:
        unavailable("Playwright is not installed: pip install -e '.[test]'", what)
    chromium = find_chromium()
    if not chromium:
        unavailable("Chromium not found: apt-get install chromium (or set CHROMIUM=/path/to/chromium)", what)
    return chromium


def isolated_env(folder: Path) -> dict:
    """The environment with every per-user folder moved into ``folder``."""
    folders = {"HOME": "home", "XDG_CONFIG_HOME": "home/.config", "XDG_CACHE_HOME": "home/.cache",
               "XDG_DATA_HOME": "home/.local/share", "XDG_STATE_HOME": "home/.local/state",
               "XDG_RUNTIME_DIR": "runtime", "JUPYTER_CONFIG_DIR": "jupyter/config",
               "JUPYTER_DATA_DIR": "jupyter/data", "JUPYTER_RUNTIME_DIR": "runtime/jupyter",
               "IPYTHONDIR": "home/.ipython", "MPLCONFIGDIR": "home/.matplotlib", "TORCH_HOME": "home/.torch",
               "TMPDIR": "tmp"}
    env = dict(os.environ, PYTHONDONTWRITEBYTECODE="1", JUPYTER_PLATFORM_DIRS="1")
    for name, relative in folders.items():
        path = folder / relative
        path.mkdir(parents=True, exist_ok=True, mode=0o700)
        env[name] = str(path)
    return env


@contextmanager
def _environ(env: dict):
    """``os.environ`` replaced by ``env`` inside the block."""
    saved = dict(os.environ)
    os.environ.clear()
    os.environ.update(env)
    try:
        yield
    finally:
        os.environ.clear()
        os.environ.update(saved)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def stop(processes: list[psutil.Process], grace: float = 10) -> list[psutil.Process]:
    """Terminate ``processes`` by id, kill what is left after ``grace`` seconds; return survivors."""
    for process in processes:
        try:
            process.terminate()
        except psutil.NoSuchProcess:
            pass
    _, alive = psutil.wait_procs(processes, timeout=grace)
    for process in alive:
        try:
            process.kill()
        except psutil.NoSuchProcess:
            pass
    return psutil.wait_procs(alive, timeout=grace)[1]


class Lab:
    """A JupyterLab server serving ``root`` on 127.0.0.1 with a random port and token."""

    def __init__(self, root: Path, folder: Path, env: dict):
        self.root, self.token, self.browser = root, secrets.token_hex(24), None  # browser: set by lab_session
        self.url = f"http://127.0.0.1:{_free_port()}"
        self.log = folder / "jupyter-server.log"
        self.page_config = Path(env["JUPYTER_CONFIG_DIR"]) / "labconfig" / "page_config.json"
        settings = folder / "lab-settings"
        for plugin, values in LAB_SETTINGS.items():
            path = settings / f"{plugin}.jupyterlab-settings"
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(json.dumps(values))
        command = [sys.executable, "-m", "jupyterlab", "--no-browser", "--ServerApp.ip=127.0.0.1",
                   f"--ServerApp.port={self.url.rsplit(':', 1)[1]}", "--ServerApp.port_retries=0",
                   f"--IdentityProvider.token={self.token}", f"--ServerApp.root_dir={root}",
                   "--ServerApp.terminals_enabled=False", "--LabApp.news_url=None",
                   "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate",
                   "--LabApp.expose_app_in_browser=True", f"--LabApp.user_settings_dir={settings}",
                   f"--LabApp.workspaces_dir={folder / 'workspaces'}"]
        if os.geteuid() == 0:
            command.append("--allow-root")
        with open(self.log, "wb") as log:
            self.process = subprocess.Popen(command, cwd=root, env=env, stdout=log, stderr=subprocess.STDOUT,
                                            stdin=subprocess.DEVNULL, start_new_session=True)
        self._wait_until_up()

    def _wait_until_up(self):
        deadline = time.monotonic() + SERVER_START_S
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"jupyter lab exited with {self.process.returncode}:\n{self.log.read_text()}")
            try:
                self.api("GET", "/api/status")
                return
            except OSError:
                time.sleep(0.25)
        raise TimeoutError(f"jupyter lab did not answer within {SERVER_START_S} s:\n{self.log.read_text()}")

    def api(self, method: str, path: str):
        request = urllib.request.Request(self.url + path, method=method,
                                         headers={"Authorization": f"token {self.token}"})
        with urllib.request.urlopen(request, timeout=10) as response:
            body = response.read()
        return json.loads(body) if body else None

    def shutdown_kernels(self):
        for session in self.api("GET", "/api/sessions"):
            self.api("DELETE", f"/api/sessions/{session['id']}")

    def disable_extensions(self, *names: str):
        """Pages opened from now on load without these extensions (the server reads this per page)."""
        self.page_config.parent.mkdir(parents=True, exist_ok=True)
        self.page_config.write_text(json.dumps({"disabledExtensions": {name: True for name in names}}))

    def open(self, notebook: Path, artifacts: Path) -> "NotebookPage":
        """Open ``notebook`` (inside ``root``) in a fresh page and workspace, once its kernel is idle."""
        relative = notebook.relative_to(self.root).as_posix()
        page = self.browser.new_page()
        page.goto(f"{self.url}/lab/workspaces/{notebook.stem}/tree/{relative}?token={self.token}")
        opened = NotebookPage(page, notebook.stem, artifacts)
        try:
            page.wait_for_function(_KERNEL_READY, timeout=KERNEL_START_S * 1000)
        except Exception as error:
            opened.close()
            raise AssertionError(f"{relative}: no idle kernel after {KERNEL_START_S} s; see the screenshot "
                                 f"and jupyter-server.log in {artifacts}") from error
        return opened


@contextmanager
def lab_session(folder: Path, root: Path, chromium: str):
    """A running ``Lab`` (with ``.browser``, a Playwright browser context) for the ``with`` block."""
    from playwright.sync_api import sync_playwright

    env = isolated_env(folder)
    ours = psutil.Process()
    already_running = {child.pid for child in ours.children(recursive=True)}
    lab = playwright = None
    try:
        lab = Lab(root, folder, env)
        with _environ(env):  # Playwright's driver inherits the environment it starts in
            playwright = sync_playwright().start()
        lab.browser = playwright.chromium.launch_persistent_context(
            str(folder / "chromium-profile"), executable_path=chromium, headless=True,
            args=CHROMIUM_FLAGS, env=env, viewport={"width": 1280, "height": 1000})
        yield lab
    finally:
        started = [child for child in ours.children(recursive=True) if child.pid not in already_running]
        try:
            if lab is not None and lab.process.poll() is None:
                lab.shutdown_kernels()
            if playwright is not None:
                playwright.stop()  # closes the browser and ends the driver
        finally:
            survivors = stop([p for p in started if p.is_running()])  # the server, kernels, browser, driver
            assert not survivors, f"could not stop processes {[p.pid for p in survivors]}"


_RUN_STATE = """() => {
    const prompts = [...document.querySelectorAll('.jp-Notebook .jp-CodeCell .jp-InputPrompt')]
        .map(p => p.textContent.trim());
    const kernel = window.jupyterapp?.shell.currentWidget?.sessionContext?.session?.kernel;
    return {prompts, idle: kernel?.status === 'idle'};
}"""
_KERNEL_READY = """() => {
    const kernel = window.jupyterapp?.shell.currentWidget?.sessionContext?.session?.kernel;
    return kernel?.connectionStatus === 'connected' && kernel.status === 'idle';
}"""
_WIDGET_RENDERER = """() => window.jupyterapp.shell.currentWidget.content.rendermime.mimeTypes
    .includes('application/vnd.jupyter.widget-view+json')"""
# The bytes each picture shows, hashed in the page (blob URLs are readable only there).
_PICTURES = """async view => Promise.all([...view.querySelectorAll('img.widget-image')].map(async img => {
    const ready = img.complete && img.naturalWidth > 0;
    const bytes = await (await fetch(img.src)).arrayBuffer();
    const digest = new Uint8Array(await crypto.subtle.digest('SHA-256', bytes));
    return {ready, digest: Array.from(digest, b => b.toString(16).padStart(2, '0')).join('')};
}))"""
_CONTROL_VALUE = """el => el.tagName === 'SELECT' ? el.value
    : el.closest('.widget-slider')?.querySelector('.widget-readout')?.textContent ?? el.getAttribute('aria-valuenow')"""


class NotebookPage:
    """One open notebook: run it from the Run menu, then check its explorers."""

    def __init__(self, page, name: str, artifacts: Path):
        self.page, self.name, self.artifacts = page, name, artifacts

    def close(self):
        """Close the page after a screenshot of all of it (the first place to look after a failure)."""
        try:
            self.page.screenshot(path=self.artifacts / f"{self.name}-page.png", full_page=True)
        finally:
            self.page.close()

    def run_all(self):
        """Run → Run All Cells, then wait until every cell shows its execution count."""
        self.page.locator(".lm-MenuBar-item", has_text=re.compile(r"^Run$")).click()
        self.page.locator('.lm-Menu-item[data-command="runmenu:run-all"]').click()
        self.page.wait_for_function(f"() => ({_RUN_STATE})().prompts.some(p => p !== '[ ]:')",
                                    timeout=30_000)
        deadline, state = time.monotonic() + RUN_ALL_S, {}
        while time.monotonic() < deadline:
            state = self.page.evaluate(_RUN_STATE)
            if state["idle"] and all(re.fullmatch(r"\[\d+\]:", p) for p in state["prompts"]):
                return
            if state["idle"] and "[*]:" not in state["prompts"]:
                raise AssertionError(f"{self.name}: a cell failed, prompts {state['prompts']}:\n{self.errors()}")
            time.sleep(0.5)
        raise TimeoutError(f"{self.name}: cells still running after {RUN_ALL_S} s: {state.get('prompts')}")

    def errors(self) -> str:
        return "\n".join(self.page.locator(
            '.jp-OutputArea-output[data-mime-type="application/vnd.jupyter.stderr"]').all_inner_texts())

    def check_explorer(self, position: int, control: str | None = None) -> str:
        """Check that the explorer in cell ``position`` rendered, move its control with the keyboard and
        wait for its picture to change. ``control`` is a CSS selector; by default the first slider
        handle, else a layer drop-down, else the first drop-down (the photo). Returns what was moved;
        screenshots go to ``artifacts``."""
        cell = self.page.locator(".jp-Notebook .jp-Cell").nth(position)
        view = cell.locator(".jp-OutputArea-output:has(.jupyter-widgets)").first
        label = f"{self.name} explorer in cell {position}"
        try:
            assert self.page.evaluate(_WIDGET_RENDERER), "JupyterLab has no renderer for widgets"
            view.wait_for(timeout=WIDGET_S * 1000)
        except Exception as error:
            shown = "\n".join(cell.locator(".jp-OutputArea-output").all_inner_texts())
            raise AssertionError(f"{label}: no widget rendered, the page shows {shown!r}; is the widget "
                                 f"manager ({WIDGET_MANAGER}, package jupyterlab_widgets) installed "
                                 "and enabled?") from error
        text = view.inner_text()
        assert "Error displaying widget" not in text, f"{label}: {text}"
        pictures = self._pictures(view, label)
        moved = self._control(view, control, label)
        shot = self.artifacts / f"{self.name}-cell{position}"
        view.screenshot(path=f"{shot}-before.png")
        change = self._move(moved, label)
        deadline = time.monotonic() + PICTURE_S
        while self._pictures(view, label) == pictures:
            assert time.monotonic() < deadline, f"{label}: the picture did not change within {PICTURE_S} s"
            time.sleep(0.25)
        view.screenshot(path=f"{shot}-after.png")
        assert "Error displaying widget" not in view.inner_text(), f"{label}: {view.inner_text()}"
        classes = moved.evaluate("el => el.closest('.jupyter-widgets').className").split()
        return " ".join(c for c in classes if not c.startswith(("lm-", "jupyter-", "widget-inline"))) + f": {change}"

    def _pictures(self, view, label: str) -> list[str]:
        """Digests of the pictures (``w.Image``) in ``view``, once every one has loaded."""
        deadline = time.monotonic() + WIDGET_S
        while True:
            pictures = view.evaluate(_PICTURES)
            assert pictures, f"{label}: no picture (ipywidgets Image) in the explorer"
            if all(p["ready"] for p in pictures):
                return [p["digest"] for p in pictures]
            assert time.monotonic() < deadline, f"{label}: a picture did not load within {WIDGET_S} s"
            time.sleep(0.25)

    @staticmethod
    def _control(view, control: str | None, label: str):
        candidates = [control] if control else [".noUi-handle", "[class*='layer'] select", "select"]
        for selector in candidates:
            found = view.locator(selector)
            if found.count():
                found.first.wait_for(state="visible")
                return found.first
        raise AssertionError(f"{label}: no control matching {' or '.join(candidates)} rendered")

    @staticmethod
    def _move(control, label: str) -> str:
        """Step the control with the arrow keys, back if it is at its end. A drop-down is opened first,
        as a person would: on a closed one JupyterLab takes the arrow keys to move between cells."""
        before = control.evaluate(_CONTROL_VALUE)
        drop_down = control.evaluate("el => el.tagName") == "SELECT"
        for key in ("ArrowDown", "ArrowUp") if drop_down else ("ArrowRight", "ArrowLeft"):
            if drop_down:
                control.click()
                control.page.keyboard.press(key)
                control.page.keyboard.press("Enter")
            else:
                control.press(key)
            deadline = time.monotonic() + 5
            while time.monotonic() < deadline:
                if (after := control.evaluate(_CONTROL_VALUE)) != before:
                    return f"{before} → {after} ({key})"
                time.sleep(0.1)
        raise AssertionError(f"{label}: the arrow keys did not change the control (value {before!r})")
