"""The repository stands alone: the contract notes that code, tests and docs cite are in it
(docs/contracts.md), every section they cite exists, and the docs' relative links resolve."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

from broker.config.billing import DATA_CENTRES

REPO = Path(__file__).resolve().parents[2]
NAME = "contracts" + ".md"  # spelt apart so this file's own text is not a citation
CONTRACTS = REPO / "docs" / NAME


def tracked_text_files() -> list[Path]:
    listed = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard"],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    suffixes = {".py", ".md", ".toml", ".yaml", ".service", ".timer", ".example", ""}
    return [
        REPO / name for name in listed if Path(name).suffix in suffixes and (REPO / name).is_file()
    ]


def test_every_citation_of_the_contract_notes_names_the_file_in_the_repository():
    stray = []
    for path in tracked_text_files():
        text = path.read_text(errors="replace")
        for match in re.finditer(re.escape(NAME), text):
            if not text[: match.start()].endswith("docs/"):
                line = text.count("\n", 0, match.start()) + 1
                stray.append(f"{path.relative_to(REPO)}:{line}")
    assert stray == []


def test_every_cited_section_exists():
    headings = set(re.findall(r"^#{2,3} (\d+(?:\.\d+)?)\.? ", CONTRACTS.read_text(), re.MULTILINE))
    assert {"1", "2", "3", "4", "4.1", "5", "6", "6.1", "6.2"} <= headings
    cited: set[str] = set()
    for path in tracked_text_files():
        text = path.read_text(errors="replace")
        for group in re.findall(r"docs/contracts\.md (§[\d.§, and-]+)", text):
            cited |= {s.rstrip(".") for s in re.findall(r"\d+(?:\.\d+)*", group)}
    assert cited, "no citations found: the pattern is wrong"
    assert sorted(cited - headings) == []


def test_relative_links_in_the_docs_resolve():
    broken = []
    for doc in [
        REPO / "README.md",
        *sorted((REPO / "docs").rglob("*.md")),
        REPO / "deploy" / "README.md",
        REPO / "bench" / "README.md",
    ]:
        for target in re.findall(r"\]\(([^)#]+)\)", doc.read_text()):
            if "://" not in target and not (doc.parent / target).exists():
                broken.append(f"{doc.relative_to(REPO)}: {target}")
    assert broken == []


SETUP_GUIDE = REPO / "docs" / "zoho-setup.md"
# Where the guide has the vendor create each credential the online check tests.
CREDENTIALS_CREATED = {
    "the billing OAuth self client": "**Add Client → Self Client**",
    "its refresh token": "grant_type=authorization_code",
    "the organization id": "The **organization id**",
    "the Developer Console ZAPIKEY": "the **ZAPIKEY** (secret)",
    "the link secret": "> link_secret",
    "the session secret": "> session_secret",
}


def test_setup_guide_creates_every_credential_before_running_the_online_check():
    text = SETUP_GUIDE.read_text()
    runs = [m.start() for m in re.finditer(r"^broker check-config --online", text, re.MULTILINE)]
    assert runs, "the guide never runs the online check"
    late = {
        what: text.find(marker)
        for what, marker in CREDENTIALS_CREATED.items()
        if not 0 <= text.find(marker) < runs[0]
    }
    assert late == {}, f"created after (or never before) the first online check: {sorted(late)}"


def test_setup_guide_steps_are_numbered_in_order():
    numbers = [int(n) for n in re.findall(r"^## (\d+)\. ", SETUP_GUIDE.read_text(), re.MULTILINE)]
    assert numbers == list(range(1, len(numbers) + 1))
    assert len(numbers) >= 9


def test_setup_guide_lists_every_data_centre_the_broker_knows():
    text = SETUP_GUIDE.read_text()
    rows = re.findall(r"^\| `([a-z.]+)`(?: \(US\))? \| `https://www\.zohoapis\.", text, re.M)
    assert sorted(rows) == sorted(DATA_CENTRES)
    assert sorted(rows) == sorted(["com", "eu", "in", "com.au", "jp", "ca", "sa", "com.cn"])
