"""The app's API through gradio_client, against the real server on 127.0.0.1."""
from __future__ import annotations

from pathlib import Path

import pytest
from gradio_client import Client, handle_file

from ui_helpers import (FAST_EXTRACT, TINY_TRAIN, InProcessApp, check_playable_mp4,
                        install_tiny_model, wait_for)


@pytest.fixture(scope="module")
def server(tmp_path_factory, faceset_a, faceset_b):
    root = tmp_path_factory.mktemp("api") / "ws"
    app = InProcessApp(root)
    install_tiny_model(app.workspace.root / "models", tmp_path_factory.getbasetemp(),
                       faceset_a, faceset_b)
    yield app
    app.close()


@pytest.fixture(scope="module")
def client(server):
    return Client(server.url, verbose=False, download_files=str(server.workspace.root.parent
                                                                 / "downloads"))


def poll_done(client, job_id: int, timeout: float = 200) -> dict:
    seen = []

    def finished():
        status = client.predict(job_id, api_name="/job")
        seen.append(status["status"])
        return status if status["status"] in ("done", "failed", "cancelled") else None
    status = wait_for(finished, timeout, poll=1.0, what=f"job {job_id}")
    return status


def test_quick_swap_round_trip(client, video_a):
    job_id = client.predict(handle_file(str(video_a)), "tiny_model", True, None,
                            api_name="/quick_swap")
    status = poll_done(client, job_id)
    assert status["status"] == "done", status
    path = Path(client.predict(job_id, api_name="/result"))
    check_playable_mp4(path, frames=48)
    # the model was trained on this person, and the job says so before it renders
    assert any("the person tiny_model was trained on" in line for line in status["log"])


def test_fit_then_adapt_through_the_api(client, video_a, video_b):
    """The model learned the astronaut: her video fits; Grace's does not, and adapting makes
    a new model (its source faces reused: no source stage) that fits Grace."""
    same = client.predict(handle_file(str(video_a)), "tiny_model", api_name="/fit")
    assert same["verdict"] == "same" and same["fits"], same
    other = client.predict(handle_file(str(video_b)), "tiny_model", api_name="/fit")
    assert other["verdict"] == "other" and not other["fits"], other
    assert "Adapt it to this person" in other["sentence"] and other["adapt_seconds"] > 0
    job_id = client.predict(handle_file(str(video_b)), "tiny_model", True,
                            {"train": {"iterations": 2, "batch": 4}, "extract": FAST_EXTRACT},
                            api_name="/adapt")
    status = poll_done(client, job_id, timeout=240)
    assert status["status"] == "done", (status["error"], status["log"])
    assert list(status["timings"]) == ["extract_target", "train", "convert"]
    adapted = Path(status["result"]["model"]).name
    assert adapted.startswith("tiny_model-adapted-on-grace_hopper")
    check_playable_mp4(Path(client.predict(job_id, api_name="/result")), frames=48)
    again = client.predict(handle_file(str(video_b)), adapted, api_name="/fit")
    assert again["verdict"] == "same", again


def test_swap_end_to_end(client, server, video_a, video_b):
    from localswap.models.card import card_markdown, model_card
    options = {"train": {**TINY_TRAIN, "iterations": 4}, "extract": FAST_EXTRACT}
    job_id = client.predict(handle_file(str(video_a)), [handle_file(str(video_b))], True,
                            options, api_name="/swap")
    status = poll_done(client, job_id, timeout=240)
    assert status["status"] == "done", (status["error"], status["log"])
    assert list(status["timings"]) == ["extract_target", "extract_source", "train", "convert"]
    assert status["losses"], "no loss points were recorded"
    path = Path(client.predict(job_id, api_name="/result"))
    check_playable_mp4(path, frames=48)
    # the model card names the people by the files given, not the stored uploads' names
    card = model_card(server.workspace.root / status["result"]["model"], thumbnail=False)
    assert card["source"] == "grace_hopper.mp4" and card["targets"] == ["astronaut.mp4"], card
    assert "-source" not in card_markdown(card) and "uploads" not in card_markdown(card)


def test_refusals_come_back_as_sentences(client, video_a):
    from gradio_client.exceptions import AppError
    with pytest.raises(AppError, match="Tick"):
        client.predict(handle_file(str(video_a)), "tiny_model", False, None,
                       api_name="/quick_swap")
    with pytest.raises(AppError, match="no job #999"):
        client.predict(999, api_name="/job")
    with pytest.raises(AppError, match="no result yet"):
        client.predict(999, api_name="/result")


def test_server_paths_are_not_accepted_as_uploads(server, video_a):
    import httpx
    fake = {"path": str(video_a), "orig_name": "a.mp4", "meta": {"_type": "gradio.FileData"}}
    before = len(server.runner.store.list())
    with httpx.Client(base_url=server.url + "gradio_api/", timeout=30) as h:
        event = h.post("call/quick_swap", json={"data": [fake, "tiny_model", True, None]})
        body = h.get(f"call/quick_swap/{event.json()['event_id']}").text
    assert "event: error" in body and "Traceback" not in body
    assert len(server.runner.store.list()) == before          # no job, nothing copied
