"""The typed settings model: defaults, environment, config file, and clear errors."""

import pytest
from pydantic import ValidationError

from vigil.settings import VigilSettings


def test_defaults_are_embedded(monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    s = VigilSettings()
    assert s.database.url is None and s.redis.url is None and s.s3.endpoint is None and s.triton.url is None
    assert str(s.state_dir) == ".vigil" and s.host == "127.0.0.1"


def test_environment_and_config_file(monkeypatch, tmp_path):
    cfg = tmp_path / "site.toml"
    cfg.write_text('state_dir = "/srv/vigil"\n[database]\nport = 6000\n[s3]\nbucket = "media"\n')
    monkeypatch.setenv("VIGIL_CONFIG", str(cfg))
    monkeypatch.setenv("VIGIL_DATABASE__PORT", "7000")  # environment beats the file
    s = VigilSettings()
    assert s.database.port == 7000 and s.s3.bucket == "media" and str(s.state_dir) == "/srv/vigil"


def test_production_urls(monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("VIGIL_DATABASE__URL", "postgresql://u:p@db:5432/vigil")
    s = VigilSettings()
    assert s.database.url.get_secret_value().startswith("postgresql://")
    assert "p@db" not in s.model_dump_json()  # secrets never printed


def test_bad_values_name_the_field(monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("VIGIL_DATABASE__PORT", "not-a-port")
    with pytest.raises(ValidationError, match="database.port"):
        VigilSettings()
    monkeypatch.delenv("VIGIL_DATABASE__PORT")
    with pytest.raises(ValidationError, match="log_format"):
        VigilSettings(log_format="xml")
