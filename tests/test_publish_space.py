"""`python -m diffusion_app publish-space`, against a stub Hub on 127.0.0.1 (HF_ENDPOINT) that keeps what it is
sent: the Space is created as a Gradio Space, the tracked files the Space needs arrive in one commit, binaries
through the LFS path (Xet needs the Hub's storage service, so this run turns it off with HF_HUB_DISABLE_XET),
nothing the patterns leave out is sent, the token is never printed, and a second run uploads nothing."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import re
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import yaml

from diffusion_app.__main__ import main
from diffusion_app.publish_space import SPACE_EXCLUDE, parse_assignments, plan_upload
from running_app import REPO_ROOT

TOKEN = "hf_stubtoken0123456789abcdefABCDEF"
SPACE = "someone/diffusion-studio"


def git_blob_sha(content: bytes) -> str:
    return hashlib.sha1(b"blob %d\0" % len(content) + content).hexdigest()


class StubHub(BaseHTTPRequestHandler):
    """Just enough of the Hub's API for create_repo, Space variables, hardware, repo_info, list_repo_files and
    create_commit (preupload, LFS batch and upload, commit)."""

    state: dict = {}

    def reply(self, payload, status: int = 200):
        body = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def body(self) -> bytes:
        return self.rfile.read(int(self.headers.get("Content-Length", 0)))

    def do_GET(self):
        files = self.state["files"]
        if self.path.startswith(f"/api/spaces/{SPACE}/tree/"):
            return self.reply([{"type": "file", "path": path, "oid": oid, "size": 0} for path, (_, oid) in files.items()])
        if self.path.startswith(f"/api/spaces/{SPACE}"):
            return self.reply({"id": SPACE, "sha": self.state["head"], "private": False})
        self.reply({"error": "not found"}, 404)

    def do_PUT(self):
        content = self.body()
        self.state["lfs"][hashlib.sha256(content).hexdigest()] = content
        self.reply({})

    def do_POST(self):
        state, body = self.state, self.body()
        state["authorized"].append(self.headers.get("Authorization") == f"Bearer {TOKEN}")
        if self.path == "/api/repos/create":
            state["created"].append(json.loads(body))
            return self.reply({"url": f"http://{self.headers['Host']}/spaces/{SPACE}"})
        if self.path == "/api/validate-yaml":  # the README's header, which configures the Space
            header = yaml.safe_load(json.loads(body)["content"].split("---")[1])
            state["headers"].append(header)
            return self.reply({"errors": [], "warnings": []})
        if self.path in (f"/api/spaces/{SPACE}/variables", f"/api/spaces/{SPACE}/secrets"):
            state[self.path.rsplit("/", 1)[1]].append(json.loads(body))
            return self.reply({})
        if self.path == f"/api/spaces/{SPACE}/hardware":
            state["hardware"].append(json.loads(body)["flavor"])
            return self.reply({"stage": "BUILDING", "hardware": {"current": None, "requested": "zero-a10g"}})
        if self.path.startswith(f"/api/spaces/{SPACE}/preupload/"):
            answer = []
            for file in json.loads(body)["files"]:
                binary = b"\0" in base64.b64decode(file["sample"]) or file["size"] > 10 * 2**20
                known = state["files"].get(file["path"])
                answer.append({"path": file["path"], "uploadMode": "lfs" if binary else "regular",
                               "shouldIgnore": False, "oid": known[1] if known else None})
            return self.reply({"files": answer})
        if self.path == f"/spaces/{SPACE}.git/info/lfs/objects/batch":
            objects = [{"oid": item["oid"], "size": item["size"], **({} if item["oid"] in state["lfs"] else {
                "actions": {"upload": {"href": f"http://{self.headers['Host']}/lfs/{item['oid']}"}}})}
                for item in json.loads(body)["objects"]]
            return self.reply({"transfer": "basic", "objects": objects})
        if self.path.startswith(f"/api/spaces/{SPACE}/commit/"):
            lines = [json.loads(line) for line in body.decode().splitlines() if line.strip()]
            state["commits"].append(lines)
            for line in lines:
                value = line["value"]
                if line["key"] == "file":
                    content = base64.b64decode(value["content"])
                    state["files"][value["path"]] = ("regular", git_blob_sha(content))
                elif line["key"] == "lfsFile":
                    state["files"][value["path"]] = ("lfs", value["oid"])
                elif line["key"] == "deletedFile":
                    state["files"].pop(value["path"], None)
            state["head"] = hashlib.sha1(body).hexdigest()
            return self.reply({"commitUrl": f"http://{self.headers['Host']}/spaces/{SPACE}/commit/{state['head']}",
                               "commitOid": state["head"]})
        self.reply({"error": "not found"}, 404)

    def log_message(self, *args):
        pass


@pytest.fixture
def hub():
    StubHub.state = {"files": {"old_module.py": ("regular", "0" * 40)}, "head": "1" * 40, "lfs": {},
                     "created": [], "variables": [], "secrets": [], "hardware": [], "commits": [], "headers": [],
                     "authorized": []}
    server = ThreadingHTTPServer(("127.0.0.1", 0), StubHub)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}", StubHub.state
    server.shutdown()


def publish(endpoint: str, tmp_path, *arguments: str) -> subprocess.CompletedProcess:
    env = {**{k: v for k, v in os.environ.items() if not k.startswith("HF_")}, "HF_ENDPOINT": endpoint,
           "HF_TOKEN": TOKEN, "HF_HOME": str(tmp_path / "hf"), "HF_HUB_DISABLE_XET": "1",
           "HF_DEBUG": "1"}  # HF_DEBUG: huggingface_hub logs every request it makes
    return subprocess.run([sys.executable, "-m", "diffusion_app", "publish-space", SPACE, *arguments],
                          cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=300)


def test_publish_uploads_the_space_in_one_commit_and_binaries_through_lfs(hub, tmp_path):
    endpoint, state = hub
    plan = plan_upload()
    first = publish(endpoint, tmp_path, "--variable", "DS_PRELOAD=emoji-t2i", "--secret", "DS_TRAINING_AUTH=a:b")
    assert first.returncode == 0, first.stderr
    assert TOKEN not in first.stdout + first.stderr  # even in huggingface_hub's debug log of every request
    assert "a:b" not in first.stdout  # (that log shows request bodies, a secret's value among them)
    assert all(state["authorized"])
    assert [(c["type"], c["sdk"], c["name"]) for c in state["created"]] == [("space", "gradio", "diffusion-studio")]
    assert state["variables"] == [{"key": "DS_PRELOAD", "value": "emoji-t2i"}]
    assert [secret["key"] for secret in state["secrets"]] == ["DS_TRAINING_AUTH"]
    assert state["hardware"] == ["zero-a10g"]

    assert len(state["commits"]) == 1
    assert state["headers"][0]["sdk"] == "gradio" and state["headers"][0]["hf_oauth"] is True
    sent = {line["value"]["path"]: line["key"] for line in state["commits"][0] if line["key"] != "header"}
    assert sent.pop("old_module.py") == "deletedFile"  # a file the checkout no longer has
    assert set(sent) == set(plan.files) and "app.py" in sent and "README.md" in sent
    binaries = [path for path in sent if re.search(r"\.(safetensors|png)$", path)]
    assert binaries and all(sent[path] == "lfsFile" for path in binaries)
    assert len(state["lfs"]) == len({state["files"][path][1] for path in binaries})
    assert not any(path.startswith(("tests/", "benchmarks/", ".ci/")) for path in sent)
    assert "Committed" in first.stdout

    second = publish(endpoint, tmp_path)
    assert second.returncode == 0, second.stderr
    assert len(state["commits"]) == 1 and "nothing uploaded" in second.stdout


def test_a_dry_run_lists_the_files_and_what_was_left_out_without_a_token(monkeypatch, capsys):
    monkeypatch.delenv("HF_TOKEN", raising=False)
    assert main(["publish-space", SPACE, "--dry-run"]) == 0
    output = capsys.readouterr().out
    plan = plan_upload()
    assert f"{len(plan.files)} files, {plan.total_bytes / 2**20:.1f} MB in all" in output
    assert "models/digits/unet/diffusion_pytorch_model.safetensors" in output
    assert "left out by 'tests/*'" in output and "tests/conftest.py" not in output
    assert set(plan.left_out) <= set(SPACE_EXCLUDE) and "tests/conftest.py" in plan.left_out["tests/*"]


def test_publishing_without_a_token_says_how_to_log_in(tmp_path, monkeypatch, capsys):
    """In this process, with no token anywhere huggingface_hub looks (the variables, the login cache)."""
    import huggingface_hub.constants

    for name in ("HF_TOKEN", "HUGGING_FACE_HUB_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setattr(huggingface_hub.constants, "HF_TOKEN_PATH", str(tmp_path / "token"))
    assert main(["publish-space", SPACE]) == 2
    assert "hf auth login" in capsys.readouterr().err


def test_variables_and_secrets_take_name_value_or_a_name_from_the_environment():
    assert parse_assignments(["DS_PRELOAD=a;b", "DS_ADMINS"], "variable", {"DS_ADMINS": "me"}) == {
        "DS_PRELOAD": "a;b", "DS_ADMINS": "me"}
    with pytest.raises(ValueError, match="give NAME=VALUE"):
        parse_assignments(["DS_ADMINS"], "secret", {})
