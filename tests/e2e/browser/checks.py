"""What every page of the browser tests must pass (issue 15): no English left on a page rendered in Russian, and
axe-core's accessibility pass with no serious or critical violation. `inspect(page, name, lang)` runs both and
keeps a screenshot in test-artifacts/.

axe-core comes from npm (tests/e2e/browser/package.json, installed by `make e2e` / `make test`); it is injected
with `page.add_script_tag`, which the pages' CSP (no inline script) allows only in a context opened with
`bypass_csp=True` — `new_page()` below opens such contexts."""
import os
import re

from tests.e2e.browser.fixtures import screenshot

AXE = os.path.join(os.path.dirname(__file__), "node_modules", "axe-core", "axe.min.js")
WIDTHS = {"desktop": (1366, 900), "phone": (390, 844)}

# Latin words a Russian page may show: names and the words Russian uses as they are.
ALLOWED_LATIN = {"e-mail", "exchanger", "english", "sandbox", "totp", "qr", "sms", "id", "ok", "csv"}

# Every text node and the texts people meet in attributes, except what the page marks as data (translate="no":
# references, amounts with their codes, accounts, e-mails, what the operator wrote) and the language switch.
_TEXTS_JS = """() => {
  const skip = (el) => !el || el.closest('[translate="no"], script, style, noscript, #lang-switch, [hidden]');
  const out = [document.title];
  const walker = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT);
  while (walker.nextNode()) {
    const node = walker.currentNode;
    if (node.textContent.trim() && !skip(node.parentElement)) { out.push(node.textContent.trim()); }
  }
  for (const el of document.querySelectorAll('[placeholder], [title], [aria-label], img[alt], input[type=submit]')) {
    if (skip(el)) { continue; }
    for (const name of ['placeholder', 'title', 'aria-label', 'alt', 'value']) {
      if (el.getAttribute(name) && (name !== 'value' || el.type === 'submit')) { out.push(el.getAttribute(name)); }
    }
  }
  return out;
}"""


def untranslated(page):
    """The texts of a Russian page that hold an English word (a word of Latin letters, not all capitals — those
    are currency codes and the like — and not an address)."""
    found = []
    for text in page.evaluate(_TEXTS_JS):
        bare = re.sub(r"\S+@\S+|https?://\S+|/\S*", " ", text)
        words = [w for w in re.findall(r"[A-Za-z][A-Za-z'-]*", bare)
                 if not w.isupper() and w.lower() not in ALLOWED_LATIN and len(w) > 1]
        if words:
            found.append(text)
    return found


def axe_violations(page):
    """axe-core's serious and critical violations on the page as it is now: [(rule, impact, [targets])]."""
    assert os.path.exists(AXE), "axe-core is missing: run `make browser-deps` (npm ci in tests/e2e/browser)"
    if not page.evaluate("typeof window.axe !== 'undefined'"):
        page.add_script_tag(path=AXE)
    results = page.evaluate("""async () => {
      const r = await window.axe.run(document, {resultTypes: ['violations']});
      return r.violations.map(v => [v.id, v.impact, v.nodes.slice(0, 5).map(n => n.target.join(' '))]);
    }""")
    return [v for v in results if v[1] in ("serious", "critical")]


def new_page(pages, width_name, lang, **kwargs):
    width, height = WIDTHS[width_name]
    extra = {"is_mobile": True, "has_touch": True} if width_name == "phone" else {}
    extra.update(kwargs)
    return pages.new_page(width=width, height=height, bypass_csp=True,
                          locale="ru-RU" if lang == "ru" else "en-US", **extra)


def inspect(page, name, lang):
    """Screenshot, then: a Russian page has no English left; no serious or critical axe violation; nothing
    sticks out sideways."""
    screenshot(page, name)
    problems = []
    if lang == "ru":
        left = untranslated(page)
        if left:
            problems.append("English on a Russian page: %r" % left)
    violations = axe_violations(page)
    if violations:
        problems.append("axe: %r" % violations)
    width = page.viewport_size["width"]
    scroll = page.evaluate("document.documentElement.scrollWidth")
    if scroll > width:
        problems.append("wider than the screen: %d > %d" % (scroll, width))
    assert not problems, "%s (%s):\n%s" % (name, page.url, "\n".join(problems))
