"""Who is using the page: the DS_TRAINING_AUTH user who logged in, or on a public server the visitor's
Hugging Face login (gr.LoginButton; Gradio passes it to handlers with a gr.OAuthProfile parameter)."""

from __future__ import annotations

import gradio as gr

from ..service.visitors import Visitor, visitor_named
from ..settings import Settings

OPEN = ""  # the account of everyone on a private server without DS_TRAINING_AUTH


def account_state(settings: Settings) -> gr.State:
    """The page session's account: None until a DS_TRAINING_AUTH login, else the user name; OPEN without one."""
    return gr.State(None if settings.training_auth else OPEN)


def require_login(account: str | None) -> None:
    if account is None:
        raise ValueError("Log in to use training.")


def signed_in_visitor(settings: Settings, account: str | None, profile: gr.OAuthProfile | None) -> Visitor | None:
    """current_visitor, or None for a public server's visitor who has not signed in."""
    try:
        return current_visitor(settings, account, profile)
    except ValueError:
        return None


def current_visitor(settings: Settings, account: str | None, profile: gr.OAuthProfile | None) -> Visitor | None:
    """The visitor a public server's handler acts for (ValueError until they sign in); None on a private one."""
    require_login(account)
    return visitor_named(settings, account or (profile.username if profile is not None else None))
