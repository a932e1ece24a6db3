"""Secrets at rest (DVR passwords, bot tokens, API secrets): AES-256-GCM in the application.

The embedded PostgreSQL has no pgcrypto, and keeping the key out of the database is better
anyway: a database dump alone reveals nothing. Ciphertext layout: version byte, 12-byte nonce,
ciphertext+tag. The column and row the secret belongs to are bound in as associated data, so a
ciphertext copied into another row does not decrypt.
"""

from __future__ import annotations

import base64
import binascii
import os

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

_VERSION = 1
_NONCE = 12


class SecretError(ValueError):
    pass


class SecretBox:
    def __init__(self, key_b64: str):
        try:
            key = base64.b64decode(key_b64, validate=True)
        except (binascii.Error, ValueError) as exc:
            raise SecretError("encryption key must be base64 (VIGIL_SECURITY__ENCRYPTION_KEY)") from exc
        if len(key) != 32:
            raise SecretError(f"encryption key must be 32 bytes for AES-256, got {len(key)}")
        self._aead = AESGCM(key)

    def encrypt(self, plaintext: str, context: str = "") -> bytes:
        nonce = os.urandom(_NONCE)
        return bytes([_VERSION]) + nonce + self._aead.encrypt(nonce, plaintext.encode(), context.encode())

    def decrypt(self, blob: bytes, context: str = "") -> str:
        if len(blob) < 1 + _NONCE + 16 or blob[0] != _VERSION:
            raise SecretError("not a Vigil secret (unknown format)")
        try:
            return self._aead.decrypt(blob[1:1 + _NONCE], blob[1 + _NONCE:], context.encode()).decode()
        except InvalidTag as exc:
            raise SecretError("secret does not decrypt: wrong key or tampered ciphertext") from exc
