"""The notifier's side of customer accounts (docs/partners.md) against the real database: account letters (SIGNUP,
RESET) are queued once per token whatever is delivered twice, in the account's language, and the send log never
shows their one-time link."""
import datetime
import uuid

import pytest

from libs.db import Database
from services.notifier.render import Renderer
from libs.contracts.orders import AccountLetterSchema
from services.notifier.schemas import notification_to_wire
from services.notifier.store import NotifierStore


@pytest.fixture
def store(migrated_database):
    database = Database(migrated_database, schema="notifier", maxconn=2)
    yield NotifierStore(database, Renderer("https://exchanger.example"))
    database.close()


def letter(kind, language="en", token_id=None):
    data = {"account_id": 1, "email": "acct-%s@example.com" % uuid.uuid4().hex[:8], "language": language,
            "token_id": token_id or uuid.uuid4().int % 10**9,
            "expires_at": (datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(hours=1)).isoformat()}
    data["confirm_url" if kind == "SIGNUP" else "reset_url"] = \
        "https://exchanger.example/account/%s?token=Sekret_%s" % ("confirm" if kind == "SIGNUP" else "reset",
                                                                   uuid.uuid4().hex)
    return AccountLetterSchema().load(data)


@pytest.mark.parametrize("kind,language,words", [("SIGNUP", "en", "Confirm your e-mail"),
                                                 ("SIGNUP", "ru", "Подтвердите e-mail"),
                                                 ("RESET", "en", "Reset your"), ("RESET", "ru", "Сброс пароля")])
def test_an_account_letter_is_queued_once_with_its_link_and_the_log_hides_the_token(store, kind, language, words):
    data = letter(kind, language)
    link = data["confirm_url"] if kind == "SIGNUP" else data["reset_url"]
    event_id = str(uuid.uuid4())
    first = store.consume_account_letter("notifier.test", event_id, kind, data)
    assert len(first["queued"]) == 1
    assert store.consume_account_letter("notifier.test", event_id, kind, data)["duplicate"] is True
    # the same token announced by another event (it never is, but) still gives one letter
    assert store.consume_account_letter("notifier.test", str(uuid.uuid4()), kind, data)["queued"] == []
    row = store.db.fetchone("SELECT * FROM notifications WHERE id = %s", (first["queued"][0],))
    assert row["kind"] == kind and row["recipient"] == data["email"] and row["audience"] == "customer"
    # stored with a placeholder; the link waits apart until the letter is sent (docs/security.md)
    assert words in row["subject"] and link not in row["body_text"] and link not in row["body_html"]
    assert "[one-time link]" in row["body_text"] and row["secret_link"] == link
    assert row["status"] == "pending" and row["order_id"] is None
    wire = notification_to_wire(row)
    assert "Sekret_" not in wire["body_text"] and "Sekret_" not in wire["body_html"]


def test_a_letter_event_without_its_link_is_malformed(store):
    data = letter("SIGNUP")
    data.pop("confirm_url")
    with pytest.raises(KeyError):       # a permanent error: the handler sends it to the dead-letter queue
        store.consume_account_letter("notifier.test", str(uuid.uuid4()), "SIGNUP", data)
