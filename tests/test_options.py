"""One options object: unknown keys and wrong types are errors wherever options come from."""

from __future__ import annotations

from pathlib import Path

import pytest

from formocr.errors import ConfigError
from formocr.options import Options


def test_defaults_and_mapping() -> None:
    o = Options.from_mapping({"dpi": 200, "template": "cheque", "review_threshold": 1})
    assert o.dpi == 200 and o.template == "cheque" and o.review_threshold == 1.0


def test_misspelled_key_suggests() -> None:
    with pytest.raises(ConfigError, match=r"unknown option 'review_treshold' .*did you mean 'review_threshold'"):
        Options.from_mapping({"review_treshold": 0.9})


@pytest.mark.parametrize("bad", [{"dpi": "300"}, {"dpi": 10}, {"deskew": "yes"}, {"binarizer": "magic"},
                                 {"review_threshold": 2}, {"string_views": 0}, {"string_views": 6}])
def test_bad_values(bad: dict) -> None:
    with pytest.raises(ConfigError):
        Options.from_mapping(bad)


def test_config_files(tmp_path: Path) -> None:
    t = tmp_path / "c.toml"
    t.write_text('[formocr]\ndpi = 200\ntemplate = "envelope"\n')
    assert Options.from_file(t, {"dpi": 150}).dpi == 150  # flags win over the file
    j = tmp_path / "c.json"
    j.write_text('{"dpi": 250, "colour": true}')
    with pytest.raises(ConfigError, match=r"c\.json: unknown option 'colour'"):
        Options.from_file(j)
    j.write_text("{nope")
    with pytest.raises(ConfigError, match="not valid JSON"):
        Options.from_file(j)
