"""Who acts on a public server, and what they may touch.

On a public server (a Space, or DS_PUBLIC=1) a training job belongs to the visitor who started it: their
Hugging Face login on a Space, a DS_TRAINING_AUTH user elsewhere. They see and manage their own jobs only;
the operator's DS_ADMINS see and manage all. On a private server there is no visitor (None): the jobs are
one shared workspace, as they always were.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Visitor:
    name: str
    admin: bool = False

    def owns(self, owner: str | None) -> bool:
        return self.admin or owner == self.name


def visitor_named(settings, name: str | None) -> Visitor | None:
    """The visitor of a public server signed in as `name`; None on a private server. ValueError when a public
    server's visitor has not signed in."""
    if not settings.public:
        return None
    if not name:
        raise ValueError("Sign in to train on this server: jobs belong to the visitor who starts them.")
    return Visitor(name, admin=name in settings.admins)
