"""The cabinet's and the partner admin pages' templates compile, and the pages' routes exist (a syntax error in a
template would otherwise show only when someone opens the page)."""
import os

import jinja2
import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
TEMPLATES = os.path.join(ROOT, "gateway", "templates")
OURS = sorted(["cabinet/" + n for n in os.listdir(os.path.join(TEMPLATES, "cabinet"))] +
              ["admin/partners.html", "admin/partner.html", "admin/withdrawals.html", "admin/_withdrawals.html"])


@pytest.mark.parametrize("name", OURS)
def test_template_compiles(name):
    env = jinja2.Environment(loader=jinja2.FileSystemLoader(TEMPLATES))
    env.get_template(name)


def test_the_pages_and_api_routes_are_registered():
    from gateway import create_app
    app = create_app({"DATABASE_URL": "postgresql://nobody@127.0.0.1:1/none", "SECRET_KEY": "x" * 32})
    rules = {(r.rule, m) for r in app.url_map.iter_rules() for m in r.methods}
    for rule, method in [("/account/", "GET"), ("/account/signup", "POST"), ("/account/confirm", "POST"),
                         ("/account/signin", "POST"), ("/account/reset", "POST"), ("/account/withdrawals", "POST"),
                         ("/admin/partners", "GET"), ("/admin/withdrawals/<int:withdrawal_id>/<action>", "POST"),
                         ("/api/v1/account/signup", "POST"), ("/api/v1/account/token", "DELETE"),
                         ("/api/v1/partner", "GET"), ("/api/v1/partner/withdrawals", "POST"),
                         ("/api/v1/admin/withdrawals/<int:withdrawal_id>/approve", "POST")]:
        assert (rule, method) in rules, (rule, method)
