"""End to end: customer accounts (docs/partners.md). The sign-up confirmation and the password reset letters arrive
at the Procfile's dev SMTP server (the real notifier, the real aiosmtpd); their links work once; the account's
exchanges are the orders placed with its e-mail, before the sign-up too."""
from tests.e2e.notifier_support import Mail, text_of
from tests.e2e.partners_support import PASSWORD, letter_link, sign_in, unique_email


def test_sign_up_and_password_reset_letters_arrive_and_their_links_work_once(system, admin_token, directions):
    email = unique_email("customer")
    earlier = system.api("POST", "/api/v1/orders", json={"direction_id": directions["manual"]["id"],
                                                         "amount_in": "50", "email": email, "recipient": "W"}).json()
    r = system.api("POST", "/api/v1/account/signup", json={"email": email, "password": PASSWORD, "language": "ru"})
    assert r.status_code == 202
    assert system.api("POST", "/api/v1/account/token", json={"email": email, "password": PASSWORD}).status_code == 403
    url, token, letter = letter_link(system, email, "SIGNUP")
    assert url.startswith(system.env["PUBLIC_URL"] + "/account/confirm?token=")
    assert "Подтвердите" in letter["Subject"] and letter.get_body(("html",)) is not None
    assert system.sql("SELECT count(*) AS n FROM orders.account_tokens WHERE token_hash = encode(sha256(%s), 'hex')",
                      (token.encode(),))[0]["n"] == 1                       # the table has the hash only
    assert system.api("POST", "/api/v1/account/confirm", json={"token": token, "password": PASSWORD}).status_code == 200
    assert system.api("POST", "/api/v1/account/confirm", json={"token": token, "password": PASSWORD}).status_code == 422
    bearer = sign_in(system, email)
    me = system.api("GET", "/api/v1/account", token=bearer).json()
    assert me["email"] == email and me["email_confirmed"] and me["language"] == "ru"
    mine = system.api("GET", "/api/v1/account/orders", token=bearer).json()["items"]
    assert [o["id"] for o in mine] == [earlier["id"]]                     # placed before the sign-up

    # the send log shows the letter, but never its one-time link
    logged = system.api("GET", "/api/v1/admin/notifications", token=admin_token,
                        params={"recipient": email}).json()["items"]
    assert sorted(n["kind"] for n in logged) == ["L1", "SIGNUP"] and token not in str(logged)   # L1: the order

    # password reset: the same answer for an unknown address, a letter for ours
    for address in (unique_email("nobody"), email):
        r = system.api("POST", "/api/v1/account/password-reset", json={"email": address})
        assert r.status_code == 202 and r.json()["status"] == "accepted"
    url, reset_token, letter = letter_link(system, email, "RESET")
    assert url.startswith(system.env["PUBLIC_URL"] + "/account/reset?token=") and "пароль" in text_of(letter)
    r = system.api("POST", "/api/v1/account/password-reset/confirm", json={"token": reset_token,
                                                                           "password": "a new password 456"})
    assert r.status_code == 200, r.text
    assert system.api("GET", "/api/v1/account", token=bearer).status_code == 401      # sessions ended
    assert system.api("POST", "/api/v1/account/token", json={"email": email, "password": PASSWORD}).status_code == 401
    assert sign_in(system, email, "a new password 456")
    again = system.api("POST", "/api/v1/account/password-reset/confirm", json={"token": reset_token,
                                                                               "password": "third password 789"})
    assert again.status_code == 422 and "token" in again.json()["fields"]
    letters = [m["X-Exchanger-Kind"] for m in Mail(system).letters(to=email)]
    assert sorted(letters) == ["L1", "PASSWORD", "RESET", "SIGNUP"]       # each once; PASSWORD: "it was reset"


def test_bad_input_is_refused_with_fields_and_writes_nothing(system):
    before = system.sql("SELECT count(*) AS n FROM orders.accounts")[0]["n"]
    for body in ({"email": "nope", "password": PASSWORD}, {"email": unique_email(), "password": "short"},
                 {"email": unique_email(), "password": PASSWORD, "admin": True}):
        r = system.api("POST", "/api/v1/account/signup", json=body)
        assert r.status_code == 422 and r.json()["fields"], r.text
    assert system.api("POST", "/api/v1/account/signup", data="[]",
                      headers={"Content-Type": "application/json"}).status_code == 400
    assert system.sql("SELECT count(*) AS n FROM orders.accounts")[0]["n"] == before
    assert system.api("POST", "/api/v1/account/token", json={"email": unique_email(),
                                                             "password": PASSWORD}).status_code == 401
