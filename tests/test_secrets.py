import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from wfctl.errors import SecretError
from wfctl.secrets import MASK, SecretBox, redact, resolve_secrets


def test_resolve_secrets_reads_the_environment():
    spec = {"API_KEY": {"envVar": "MY_KEY"}, "EMPTY": {"envVar": "BLANK"}}
    assert resolve_secrets(spec, {"MY_KEY": "s3cret", "BLANK": ""}) == {"API_KEY": "s3cret", "EMPTY": ""}


def test_resolve_secrets_missing_variable():
    with pytest.raises(SecretError) as err:
        resolve_secrets({"API_KEY": {"envVar": "MY_KEY"}}, {})
    assert str(err.value) == "secret 'API_KEY': environment variable MY_KEY is not set"


@pytest.mark.parametrize("entry", [{}, {"envVar": 3}, "MY_KEY", None])
def test_resolve_secrets_malformed_entry(entry):
    with pytest.raises(SecretError, match="secret 'X': expected"):
        resolve_secrets({"X": entry}, {"MY_KEY": "v"})


def test_secret_box_round_trip_with_explicit_key():
    key = SecretBox.generate_key()
    box = SecretBox(key)
    token = box.encrypt("hunter2 ü")
    assert token != "hunter2 ü" and "hunter2" not in token
    assert box.decrypt(token) == "hunter2 ü"
    assert SecretBox(key.encode()).decrypt(token) == "hunter2 ü"
    assert not box.ephemeral


def test_secret_box_maps():
    box = SecretBox(SecretBox.generate_key())
    sealed = box.encrypt_map({"a": "one", "b": "two"})
    assert set(sealed) == {"a", "b"} and sealed["a"] != "one"
    assert box.decrypt_map(sealed) == {"a": "one", "b": "two"}


def test_secret_box_key_from_environment(monkeypatch):
    key = SecretBox.generate_key()
    monkeypatch.setenv("WFCTL_SECRET_KEY", key)
    token = SecretBox().encrypt("v")
    assert SecretBox(key).decrypt(token) == "v"
    assert not SecretBox().ephemeral


def test_secret_box_ephemeral_key_is_shared_in_the_process(monkeypatch):
    monkeypatch.delenv("WFCTL_SECRET_KEY", raising=False)
    first, second = SecretBox(), SecretBox()
    assert first.ephemeral
    assert second.decrypt(first.encrypt("v")) == "v"


def test_secret_box_bad_token_and_wrong_key():
    box = SecretBox(SecretBox.generate_key())
    other = SecretBox(SecretBox.generate_key())
    for token in ("not-a-token", other.encrypt("v"), "", "é"):
        with pytest.raises(SecretError) as err:
            box.decrypt(token)
        assert "\n" not in str(err.value) and "cannot decrypt" in str(err.value)


def test_secret_box_invalid_key(monkeypatch):
    with pytest.raises(SecretError, match="invalid secret key"):
        SecretBox("short")
    monkeypatch.setenv("WFCTL_SECRET_KEY", "nope")
    with pytest.raises(SecretError, match=r"invalid secret key \(WFCTL_SECRET_KEY\)"):
        SecretBox()


def test_encrypt_rejects_non_strings():
    with pytest.raises(SecretError):
        SecretBox(SecretBox.generate_key()).encrypt(42)  # type: ignore[arg-type]


def test_redact_strings_keys_and_nesting():
    value = {"token": "Bearer abcd1234", "abcd1234": [1, "x abcd1234 y", {"n": None, "b": True}], "n": 1234}
    assert redact(value, ["abcd1234"]) == {
        "token": f"Bearer {MASK}", MASK: [1, f"x {MASK} y", {"n": None, "b": True}], "n": 1234}
    assert value["token"] == "Bearer abcd1234"  # input untouched


def test_redact_longest_secret_first_and_regex_characters():
    assert redact("key=abcdef", ["abcd", "abcdef"]) == f"key={MASK}"
    assert redact("a.b*c+d", ["b*c+"]) == f"a.{MASK}d"


def test_redact_ignores_short_and_empty_secrets():
    value = {"a": "xyz is here"}
    assert redact(value, ["", "xyz", None]) is value  # type: ignore[list-item]
    assert redact(value, []) is value
    assert redact("abcd", ["abcd"]) == MASK


@given(st.text(min_size=4, max_size=12), st.text(max_size=20), st.text(max_size=20))
def test_redact_never_leaks(secret, before, after):
    assume("\0" not in secret)
    out = redact([before + secret + after], [secret])
    assert secret not in out[0].replace(MASK, "\0")
