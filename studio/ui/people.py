"""Who is asking, for every handler that reads or loads anything: the signed-in person, or a refusal in the
caller's language (Gradio already refuses anonymous callers where sign-in is on; this is the same rule again,
where a handler would otherwise fall back to someone)."""
from __future__ import annotations

import gradio as gr

from studio import auth
from studio.ui.i18n import t


def signed_in(request) -> auth.User:
    user = auth.user_from_request(request)
    if user is None:
        raise gr.Error(t("err_sign_in", request))
    return user
