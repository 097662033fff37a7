"""Publishing a trained model to the Hugging Face Hub.

Everything goes through huggingface_hub, so HF_ENDPOINT (a mirror such as hf-mirror.com) is honoured
for the upload and for the repository address handed back.
"""

from __future__ import annotations

from pathlib import Path

from ...catalog import HUB_REPO_ID


def push_folder(folder: Path, repo_id: str, token: str, offline: bool, commit_message: str) -> str:
    """Create the repository if needed and upload the folder; returns the repository's address."""
    from huggingface_hub import constants, create_repo, upload_folder

    repo_id = (repo_id or "").strip()
    if not HUB_REPO_ID.fullmatch(repo_id):
        raise ValueError(f"Hub repository must look like user/name, got {repo_id!r}.")
    if not token or not token.strip():
        raise ValueError("Type a Hugging Face access token with write permission to push.")
    if offline:
        raise ValueError("This server runs offline (DS_OFFLINE); pushing to the hub needs network access.")
    try:
        create_repo(repo_id, token=token.strip(), exist_ok=True)
        upload_folder(repo_id=repo_id, folder_path=folder, token=token.strip(), commit_message=commit_message)
    except Exception as err:  # network, permission and validation errors alike end here
        reason = str(err).splitlines()[0] if str(err) else type(err).__name__
        raise ValueError(f"Pushing to {repo_id} failed: {reason}") from None
    return f"{constants.ENDPOINT}/{repo_id}"
