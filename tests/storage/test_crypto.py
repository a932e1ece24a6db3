import base64
import os

import pytest

from vigil.storage.crypto import SecretBox, SecretError

KEY = base64.b64encode(os.urandom(32)).decode()


def test_round_trip_and_fresh_nonce():
    box = SecretBox(KEY)
    a, b = box.encrypt("hunter2", "dvrs.password:1"), box.encrypt("hunter2", "dvrs.password:1")
    assert a != b and b"hunter2" not in a
    assert box.decrypt(a, "dvrs.password:1") == "hunter2"


def test_ciphertext_is_bound_to_its_row():
    box = SecretBox(KEY)
    blob = box.encrypt("token", "telegram_configs.bot_token:1")
    with pytest.raises(SecretError, match="does not decrypt"):
        box.decrypt(blob, "telegram_configs.bot_token:2")


def test_wrong_key_and_tampering_are_refused():
    blob = SecretBox(KEY).encrypt("secret")
    with pytest.raises(SecretError):
        SecretBox(base64.b64encode(os.urandom(32)).decode()).decrypt(blob)
    tampered = blob[:-1] + bytes([blob[-1] ^ 1])
    with pytest.raises(SecretError):
        SecretBox(KEY).decrypt(tampered)


@pytest.mark.parametrize("bad", ["not base64!", base64.b64encode(b"short").decode()])
def test_bad_keys_get_a_clear_error(bad):
    with pytest.raises(SecretError, match="encryption key"):
        SecretBox(bad)
