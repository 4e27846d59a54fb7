/* cookie_gate banner: progressive enhancement of the server-rendered form.
 * Without this file the form posts and the server answers 303 back to the page. With it:
 * decisions go through fetch without a reload, tags of newly accepted categories start,
 * Consent Mode is updated, and focus is moved in and given back. No eval, no inline
 * styles, no dependencies: it runs under a strict CSP. */
(() => {
  "use strict";
  const d = document;
  const root = d.querySelector(".cookie-gate");
  if (!root || !window.fetch || root.cgReady) return;
  root.cgReady = true;
  const form = root.querySelector("form");
  const url = form.getAttribute("action");
  const data = (name) => root.getAttribute("data-" + name) || "";
  const holder = d.getElementById("cookie-gate-settings"); // a decided visitor's <details>
  const layer = root.querySelector(".cookie-gate__choose"); // the banner's second layer
  const withdraw = form.querySelector('.cookie-gate__button[value="withdraw"]');
  const SIGNALS = {
    analytics: ["analytics_storage"],
    marketing: ["ad_storage", "ad_user_data", "ad_personalization"],
    preferences: ["functionality_storage", "personalization_storage"],
  };
  let state = {};
  data("allowed").split(" ").forEach((name) => { if (name) state[name] = true; });
  let dismissable = !!holder; // the banner closes without a choice only once one was made
  let toggle = holder ? holder.querySelector("summary") : null;
  let opener = null;
  let busy = false;

  const focusable = (el) => el && el !== d.body && el.isConnected && el.getClientRects().length > 0;
  const focus = (el) => { if (el) el.focus({ preventScroll: true }); };
  const isOpen = () => (holder ? holder.open : !root.hidden);

  const open = (from) => {
    if (from || !root.contains(d.activeElement)) opener = from || d.activeElement;
    if (holder) {
      holder.open = true;
    } else {
      root.hidden = false;
      if (layer) layer.open = true;
      if (toggle) toggle.setAttribute("aria-expanded", "true");
    }
    focus(root);
  };

  /* Close, and give focus back: to what opened it, else to the control that reopens the choice. */
  const close = () => {
    if (holder) holder.open = false;
    else root.hidden = true;
    if (toggle && !holder) toggle.setAttribute("aria-expanded", "false");
    focus([opener, toggle, d.querySelector("[data-cookie-gate-open]")].find(focusable));
    opener = null;
  };

  /* After a choice made without a reload, offer "Cookie settings" where the server would. */
  const makeToggle = () => {
    const placement = data("settings-placement");
    if (toggle || placement === "off") return;
    toggle = d.createElement("button");
    toggle.type = "button";
    toggle.className = "cookie-gate-settings__button cookie-gate-toggle cookie-gate-settings--" + placement;
    toggle.textContent = data("settings-label");
    toggle.lang = root.lang;
    toggle.dir = root.dir;
    toggle.setAttribute("aria-controls", root.id);
    toggle.setAttribute("aria-expanded", "false");
    toggle.addEventListener("click", () => (isOpen() ? close() : open(toggle)));
    d.body.appendChild(toggle);
  };

  /* Re-create blocked scripts so they run; give blocked frames their address back. */
  const activate = (allowed) => {
    d.querySelectorAll('script[type="text/plain"][data-cookie-category]').forEach((old) => {
      if (!allowed[old.getAttribute("data-cookie-category")]) return;
      const script = d.createElement("script");
      for (const { name, value } of Array.from(old.attributes)) {
        if (!/^(type|nonce|data-cookie-gate-type)$/.test(name)) script.setAttribute(name, value);
      }
      const type = old.getAttribute("data-cookie-gate-type");
      if (type) script.type = type;
      script.nonce = old.nonce; // the attribute reads "" once a CSP nonce is in force
      if (old.hasAttribute("src")) script.async = false; // keep the page's order
      else script.text = old.text;
      old.replaceWith(script);
    });
    d.querySelectorAll("iframe[data-cookie-category]").forEach((frame) => {
      if (!allowed[frame.getAttribute("data-cookie-category")]) return;
      if (frame.hasAttribute("data-srcdoc")) {
        frame.srcdoc = frame.getAttribute("data-srcdoc");
        frame.removeAttribute("data-srcdoc");
      }
      if (frame.hasAttribute("data-src")) {
        frame.src = frame.getAttribute("data-src");
        frame.removeAttribute("data-src");
      }
    });
  };

  const consentMode = (before, after) => {
    if (typeof window.gtag !== "function") return;
    const update = {};
    let changed = false;
    Object.keys(SIGNALS).forEach((name) => {
      if (!before[name] !== !after[name]) changed = true;
      SIGNALS[name].forEach((signal) => { update[signal] = after[name] ? "granted" : "denied"; });
    });
    if (changed) window.gtag("consent", "update", update);
  };

  const apply = (record) => {
    const before = state;
    const categories = record.categories || {};
    state = {};
    Object.keys(categories).forEach((name) => { state[name] = !!categories[name]; });
    form.querySelectorAll('input[name="accept"]').forEach((box) => { box.checked = record.decided && state[box.value]; });
    if (typeof record.remember === "boolean") {
      form.querySelector('input[name="remember"][value="' + (record.remember ? "yes" : "no") + '"]').checked = true;
    }
    if (withdraw && !holder) withdraw.hidden = !record.decided;
    activate(state);
    consentMode(before, state);
    if (!holder) makeToggle();
    if (layer) layer.open = false;
    dismissable = true;
    d.dispatchEvent(new CustomEvent("cookie-gate:consent", { detail: record }));
    close();
  };

  form.addEventListener("submit", (event) => {
    const button = event.submitter;
    if (!button || form.cgFallback) return;
    event.preventDefault();
    if (busy) return;
    busy = true;
    const action = button.value;
    let request = { method: "DELETE" };
    if (action !== "withdraw") {
      const accept = action === "accept_all" ? "all" : action === "reject_all" ? []
        : Array.from(form.querySelectorAll('input[name="accept"]:checked'), (box) => box.value);
      const remember = !form.querySelector('input[name="remember"][value="no"]:checked');
      request = { method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify({ accept, remember, via: "banner" }) };
    }
    request.credentials = "same-origin";
    form.setAttribute("aria-busy", "true");
    fetch(url, request)
      .then((response) => (response.ok ? response.json() : Promise.reject(response)))
      .then(apply, () => {
        // Let the server answer the plain form instead (303 back to this page).
        form.cgFallback = true;
        const field = d.createElement("input");
        field.type = "hidden";
        field.name = "action";
        field.value = action;
        form.appendChild(field);
        form.submit();
      })
      .then(() => {
        busy = false;
        form.removeAttribute("aria-busy");
      });
  });

  /* Enter toggles a switch or picks a radio, as Space does, instead of submitting the form. */
  form.addEventListener("keydown", (event) => {
    const target = event.target;
    if (event.key === "Enter" && /^(checkbox|radio)$/.test(target.type)) {
      event.preventDefault();
      target.click();
    }
  });

  /* Escape closes the second layer (focus back on its summary), then a dismissable panel. */
  (holder || root).addEventListener("keydown", (event) => {
    if (event.key !== "Escape") return;
    if (layer && layer.open) {
      layer.open = false;
      focus(layer.querySelector("summary"));
    } else if (dismissable && isOpen()) {
      close();
    } else {
      return;
    }
    event.preventDefault();
  });

  if (holder) holder.addEventListener("toggle", () => { if (holder.open && !root.contains(d.activeElement)) focus(root); });

  /* The site's own "Cookie settings" links. */
  d.addEventListener("click", (event) => {
    const link = event.target.closest && event.target.closest("[data-cookie-gate-open]");
    if (!link) return;
    event.preventDefault();
    open(link);
  });

  // Move focus into the banner, unless the visitor is already somewhere on the page.
  if (!holder && (!d.activeElement || d.activeElement === d.body)) focus(root);
})();
