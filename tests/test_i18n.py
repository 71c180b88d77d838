"""Korean and English complete: every key in both languages, and no UI text that bypasses i18n."""
import ast
import re
from pathlib import Path

from conftest import KO

from studio.ui.i18n import STRINGS, t

UI = Path(__file__).resolve().parent.parent / "studio" / "ui"
TEXT_KWARGS = {"label", "info", "placeholder"}
COMPONENTS_WITH_TEXT = {"Button", "Markdown", "Textbox", "Number", "Checkbox", "Dropdown", "Radio", "Slider",
                        "CheckboxGroup", "File", "Dataframe", "Plot", "Tab", "Accordion", "JSON", "Code", "Chatbot"}
ALLOWED = {"config.yaml", "train.py", "your-name/my-lora"}  # file names and a Hub id look the same in every language


def test_every_key_has_both_languages_and_the_same_placeholders():
    for key, pair in STRINGS.items():
        assert isinstance(pair, tuple) and len(pair) == 2 and all(isinstance(s, str) and s for s in pair), key
        fields = [sorted(re.findall(r"\{(\w+)", s)) for s in pair]
        assert fields[0] == fields[1], (key, fields)


def test_every_key_the_tabs_ask_for_exists():
    """I("key") with a key missing from STRINGS shows the key itself as the label (the Runs table's did)."""
    asked = {node.args[0].value for path in UI.glob("*.py") for node in ast.walk(ast.parse(path.read_text("utf-8")))
             if isinstance(node, ast.Call) and getattr(node.func, "id", None) == "I" and node.args
             and isinstance(node.args[0], ast.Constant)}
    assert len(asked) > 100
    assert asked - set(STRINGS) == set()


def test_korean_is_korean():
    hangul = re.compile(r"[\uac00-\ud7a3]")
    names = {"fmt_sharegpt", "fmt_openai", "fmt_alpaca", "src_hub", "lora_alpha", "sum_loss",
             "export_gguf"}  # names, code
    same_ok = {k for k, (en, ko) in STRINGS.items() if en == ko} - names
    assert all(not hangul.search(en) for en, _ in STRINGS.values())
    # keys whose text is a name or a formula may be the same in both; everything else is translated
    untranslated = [k for k in same_ok if re.search(r"[a-z]{4,}", STRINGS[k][0]) and " " in STRINGS[k][0]]
    assert untranslated == [], untranslated


def _literal(node) -> str | None:
    if isinstance(node, ast.Constant) and isinstance(node.value, str) and node.value.strip():
        return node.value
    if isinstance(node, ast.JoinedStr):
        return ast.unparse(node)
    return None


def test_no_ui_text_bypasses_i18n():
    found = []
    for path in sorted(UI.glob("*.py")):
        if path.name == "i18n.py":
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if not isinstance(node, ast.Call) or not isinstance(node.func, ast.Attribute):
                continue
            owner = node.func.value.id if isinstance(node.func.value, ast.Name) else ""
            name = node.func.attr
            if owner == "gr" and name in ("Error", "Info", "Warning", "Success"):
                texts = [_literal(a) for a in node.args[:1]]
            elif owner == "gr" and name in COMPONENTS_WITH_TEXT:
                texts = [_literal(a) for a in node.args[:1] if name in ("Button", "Markdown", "Tab", "Accordion")]
                texts += [_literal(k.value) for k in node.keywords if k.arg in TEXT_KWARGS]
            else:
                continue
            for text in texts:
                if text and text not in ALLOWED and re.search(r"[A-Za-z]{3,}", text):
                    found.append(f"{path.name}:{node.lineno}: gr.{name}({text[:60]!r})")
    assert found == [], "\n".join(found)


def test_server_text_follows_the_request_language():
    assert t("state_running", KO) == "훈련 중" and t("state_running", None) == "running"
