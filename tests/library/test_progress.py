"""The rollout bar in a real kernel: live as a widget, and its final state as text in the
saved notebook (what papermill and nbval keep)."""

from __future__ import annotations

import nbformat
from nbclient import NotebookClient

CELL = """\
from handson.progress import service_progress

update = service_progress()
for running in (0, 1, 2):
    state = "COMPLETED" if running == 2 else "IN_PROGRESS"
    service = {
        "desiredCount": 2,
        "pendingCount": 2 - running,
        "deployments": [{"runningCount": running, "rolloutState": state}],
    }
    update(service, final=running == 2)
"""


def test_the_saved_outputs_are_the_live_bar_and_the_final_state_in_text() -> None:
    notebook = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(CELL)])
    NotebookClient(notebook, kernel_name="python3", timeout=60).execute()
    bar, final = notebook.cells[0].outputs
    assert bar["output_type"] == "display_data"
    assert "application/vnd.jupyter.widget-view+json" in bar["data"], "live in JupyterLab"
    assert "IntProgress" not in bar["data"]["text/plain"], "no widget repr where widgets don't run"
    assert (final["output_type"], final["text"]) == (
        "stream",
        "2/2 tasks running, 0 pending, rollout COMPLETED\n",
    )
