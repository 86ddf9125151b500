// The consumer page's script: records the scan (POST /v1/scans), shows the verdict and the reward,
// offers enrolment, the member's wallet, the prize claim form and the privacy choices.
// The GET of the page records nothing, since chat apps and link checkers fetch URLs too: only this
// script, run by the consumer's browser, posts the scan. No innerHTML anywhere: text goes in as text.
(function () {
  "use strict";
  var body = document.body;
  var t = JSON.parse(body.getAttribute("data-texts"));
  var lang = body.getAttribute("data-lang");
  var mode = body.getAttribute("data-mode");
  var memory = {};
  // A scan normally answers well within a second: past SLOW_MS the page says it is still working,
  // past TIMEOUT_MS it stops waiting and offers a retry (a phone on a weak signal can hang for minutes).
  var SLOW_MS = 1000;
  var TIMEOUT_MS = 8000;
  var reducedMotion = !!(window.matchMedia && window.matchMedia("(prefers-reduced-motion: reduce)").matches);

  function $(id) { return document.getElementById(id); }

  function fill(text, values) {
    return text.replace(/\{(\w+)\}/g, function (match, key) {
      return Object.prototype.hasOwnProperty.call(values, key) ? String(values[key]) : match;
    });
  }

  function wait(ms) { return new Promise(function (resolve) { setTimeout(resolve, ms); }); }

  // Local storage throws in some private modes: fall back to memory for this page view.
  function load(name) {
    try { return window.localStorage.getItem(name); } catch (err) { return memory[name] || null; }
  }
  function save(name, value) {
    memory[name] = value;
    try { window.localStorage.setItem(name, value); } catch (err) { /* memory copy is enough */ }
  }
  function forget(name) {
    delete memory[name];
    try { window.localStorage.removeItem(name); } catch (err) { /* nothing stored */ }
  }

  function randomId() {
    var bytes = new Uint8Array(16);
    window.crypto.getRandomValues(bytes);
    return Array.prototype.map.call(bytes, function (b) { return (b + 256).toString(16).slice(1); }).join("");
  }

  // A random id per browser, not a fingerprint: it lets the service tell this phone's scans apart.
  function deviceId() {
    var id = load("oc_device");
    if (!id || !/^[\x21-\x7e]{8,128}$/.test(id)) {
      id = "web-" + randomId();
      save("oc_device", id);
    }
    return id;
  }

  function when(iso, dateOnly) {
    var date = new Date(iso);
    if (!iso || isNaN(date.getTime())) { return ""; }
    try {
      return date.toLocaleString(lang, dateOnly ? { dateStyle: "medium" } : { dateStyle: "medium", timeStyle: "short" });
    } catch (err) {
      return dateOnly ? date.toLocaleDateString() : date.toLocaleString();
    }
  }

  function yuan(cents) {
    return cents % 100 === 0 ? String(cents / 100) : (cents / 100).toFixed(2);
  }

  // Every call of the page goes through here: JSON in and out, the member cookie, a timeout, no throw.
  async function request(method, path, payload, headers) {
    var controller = typeof AbortController === "function" ? new AbortController() : null;
    var timer = controller ? setTimeout(function () { controller.abort(); }, TIMEOUT_MS) : null;
    var failed = function () {
      clearTimeout(timer);
      return { ok: false, status: 0, body: null, retryAfter: null, timedOut: !!(controller && controller.signal.aborted) };
    };
    var init = {
      method: method,
      credentials: "same-origin", // sends and receives the httpOnly oc_member cookie
      headers: Object.assign({}, headers || {}),
      signal: controller ? controller.signal : undefined
    };
    if (payload !== undefined) {
      init.headers["Content-Type"] = "application/json";
      init.body = JSON.stringify(payload);
    }
    var response;
    try { response = await fetch(path, init); } catch (err) { return failed(); }
    var data = null;
    try {
      data = await response.json();
    } catch (err) {
      // The timeout may strike while the body is still arriving: that is a lost answer, not an empty one.
      if (controller && controller.signal.aborted) { return failed(); }
      data = null;
    }
    clearTimeout(timer);
    return { ok: response.ok, status: response.status, body: data, retryAfter: response.headers.get("Retry-After") };
  }

  // Problem responses (RFC 9457) become a sentence in the page's language; the raw detail is English.
  function problemText(result) {
    var problem = result.body || {};
    var type = String(problem.type || "");
    var field = problem.errors && problem.errors[0] ? problem.errors[0].field : "";
    if (result.status === 0) {
      if (result.timedOut) { return t.err_timeout; }
      return navigator.onLine === false ? t.offline : t.err_network;
    }
    if (result.status === 429) {
      var seconds = parseInt(result.retryAfter, 10);
      return seconds > 0 && seconds <= 600 ? fill(t.err_rate_wait, { seconds: seconds }) : t.err_rate;
    }
    if (/\/otp-rejected$/.test(type)) { return t.err_otp; }
    if (/\/prize-not-claimable$/.test(type)) { return t.claim_shipped; }
    if (field === "phone") { return t.err_phone; }
    if (result.status === 401) { return t.err_token; }
    if (result.status === 400 || result.status === 422) { return t.err_invalid; }
    // 409 on a scan: the first try of this same scan is still being answered.
    if (result.status === 503 || result.status === 409) { return t.err_busy; }
    return fill(t.err_generic, { status: result.status });
  }

  // The position, only ever called after the consumer agreed; null when unavailable or refused.
  function position() {
    return new Promise(function (resolve) {
      if (!navigator.geolocation) { resolve(null); return; }
      navigator.geolocation.getCurrentPosition(
        function (found) {
          resolve({
            lat: found.coords.latitude,
            lng: found.coords.longitude,
            accuracy_m: Math.min(Math.max(found.coords.accuracy || 0, 0), 1000000)
          });
        },
        function () { resolve(null); },
        { enableHighAccuracy: false, timeout: 5000, maximumAge: 600000 }
      );
    });
  }

  // One key and one body per page view: every retry of this scan (after a timeout, offline, a lost
  // answer) is the same request to the service, so it counts and rewards once. A reload is a new scan.
  var idempotencyKey = "page-" + randomId();
  var scanPayload = null;

  async function postScan() {
    if (scanPayload === null) {
      var payload = { code: window.location.href, device_id: deviceId() };
      if (load("oc_location") === "yes") {
        var where = await position();
        if (where) { payload.location = where; }
      }
      scanPayload = payload;
    }
    return request("POST", "/v1/scans", scanPayload, { "Idempotency-Key": idempotencyKey });
  }

  if (mode === "unverified") {
    // Forged codes are still reported: where fakes turn up is what the brand needs to know.
    postScan().then(function (result) { if (result.ok) { $("logged").hidden = false; } });
    return;
  }

  // Screen readers wait while the verdict is busy, so an animation is announced once, at its end.
  var busyCount = 0;
  function busy(on) {
    busyCount = Math.max(busyCount + (on ? 1 : -1), 0);
    if (busyCount > 0) { $("verdict").setAttribute("aria-busy", "true"); } else { $("verdict").removeAttribute("aria-busy"); }
  }

  function showVerdict(kind, title, detail) {
    var card = $("verdict");
    card.className = "card " + kind;
    $("verdict-title").textContent = title;
    $("verdict-detail").textContent = detail;
  }

  // The balance counts up from what it was before this scan to what it is now.
  function countUp(element, template, from, to) {
    var done = false;
    var start = null;
    var duration = 800;
    function show(value) { element.textContent = fill(template, { points: value }); }
    function end() {
      if (done) { return; }
      done = true;
      show(to);
      busy(false);
    }
    function frame(now) {
      if (done) { return; }
      if (start === null) { start = now; }
      var progress = Math.min((now - start) / duration, 1);
      show(Math.round(from + (to - from) * progress));
      if (progress < 1) { window.requestAnimationFrame(frame); } else { end(); }
    }
    if (reducedMotion || from >= to) { show(to); return; }
    busy(true);
    show(from);
    window.requestAnimationFrame(frame);
    setTimeout(end, duration + 300); // a page in the background gets no animation frames
  }

  function showPoints(member, earned) {
    var balance = member.points_balance || 0;
    $("verdict-points").hidden = false;
    countUp($("verdict-points"), t.points, Math.max(balance - (earned || 0), 0), balance);
  }

  function listItem(list, text) {
    var item = document.createElement("li");
    item.textContent = text;
    list.appendChild(item);
    return item;
  }

  // What the brand's campaigns gave this scan: points earned, coupons, a prize won or "no prize".
  // A lucky draw is revealed by a card that flips; the text lines appear once it has turned.
  async function showReward(scan) {
    var reward = scan.reward;
    var list = $("verdict-reward");
    list.textContent = "";
    list.hidden = true;
    if (!reward) { return; }
    var lines = [];
    var draw = null;
    var claims = [];
    if (reward.points > 0) { lines.push(fill(t.reward_points, { points: reward.points })); }
    reward.outcomes.forEach(function (outcome) {
      if (outcome.kind === "lucky_draw" && draw === null) { draw = outcome; }
      if (outcome.result === "won" && outcome.prize && outcome.prize.kind !== "points") {
        lines.push(fill(t.reward_won, { prize: outcome.prize.name }));
        if (outcome.prize.needs_claim) {
          lines.push(t.reward_claim);
          claims.push({ campaign_id: outcome.campaign_id, scan_id: scan.scan_id, name: outcome.prize.name });
        }
      } else if (outcome.kind === "lucky_draw" && outcome.result !== "won") {
        lines.push(t.reward_no_prize);
      }
      if (outcome.coupon) {
        lines.push(fill(t.reward_coupon, { name: outcome.coupon.name, code: outcome.coupon.code }));
      }
    });
    if (draw !== null) { await reveal(draw); }
    lines.forEach(function (line) { listItem(list, line); });
    list.hidden = lines.length === 0;
    if (claims.length > 0) { openClaim(claims[0], false); }
  }

  async function reveal(draw) {
    var card = $("reveal");
    var won = draw.result === "won" && draw.prize;
    $("reveal-result").textContent = won ? draw.prize.name : t.reward_no_prize;
    $("reveal-result").classList.toggle("none", !won);
    card.hidden = false;
    if (reducedMotion) {
      card.classList.add("flipped");
      return;
    }
    busy(true);
    $("reveal-status").hidden = false;
    card.classList.add("drawing");
    await wait(900);
    card.classList.remove("drawing");
    card.classList.add("flipped");
    await wait(650); // the flip's transition
    $("reveal-status").hidden = true;
    busy(false);
  }

  function showMember(member, earned) {
    if (!member) { return; }
    showPoints(member, earned);
    $("wallet-card").hidden = false;
    $("privacy-actions").hidden = false;
    if (member.enrolled) {
      $("member").hidden = true;
      $("enrolled").hidden = false;
      $("enrolled-detail").textContent = t.enrolled_welcome;
    } else {
      $("member").hidden = false;
    }
  }

  function showScan(scan) {
    var verdict = String(scan.verdict);
    var genuine = verdict === "genuine_first" || verdict === "genuine_repeat";
    var detail = t["verdict_" + verdict + "_detail"] || "";
    if (verdict === "genuine_repeat") {
      detail = fill(detail, { count: scan.scan_count, time: when(scan.first_scanned_at) });
    }
    showVerdict(genuine ? "ok" : verdict === "counterfeit" ? "bad" : "warn", t["verdict_" + verdict] || verdict, detail);
    if (verdict === "counterfeit") {
      $("authentic").hidden = true; // the code was voided since this page was built: do not vouch for it
    }
    showMember(scan.member, scan.reward ? scan.reward.points : 0);
    showReward(scan);
  }

  // "idle" (not sent, or failed), "pending", or "done": one scan in flight at a time.
  var scanState = "idle";
  // Set when the last try failed for want of a network: coming back online then retries once by itself.
  var waitingForNetwork = false;
  var onlineRetried = false;

  function scanFailed(text, canRetry, network) {
    showVerdict("warn", text, "");
    $("retry").hidden = !canRetry;
    waitingForNetwork = network;
  }

  async function recordScan() {
    if (scanState !== "idle") { return; }
    $("retry").hidden = true;
    if (navigator.onLine === false) {
      scanFailed(t.offline, true, true);
      return;
    }
    scanState = "pending";
    showVerdict("", t.checking, "");
    var slow = setTimeout(function () {
      $("verdict").classList.add("busy");
      $("verdict-title").textContent = t.verifying_slow;
    }, SLOW_MS);
    var result = await postScan();
    clearTimeout(slow);
    if (result.ok && result.body) {
      scanState = "done";
      waitingForNetwork = false;
      showScan(result.body);
      return;
    }
    scanState = "idle";
    // Worth another try when the network, the limits or the service were the problem.
    var status = result.status;
    scanFailed(problemText(result), status === 0 || status === 409 || status === 429 || status >= 500, status === 0);
  }

  $("retry").addEventListener("click", recordScan);

  window.addEventListener("online", function () {
    if (waitingForNetwork && !onlineRetried) {
      onlineRetried = true;
      recordScan();
    }
  });

  // Enrolment.
  function memberError(text) {
    $("member-error").textContent = text;
    $("member-error").hidden = !text;
  }

  $("otp-form").addEventListener("submit", async function (event) {
    event.preventDefault();
    memberError("");
    $("send-code").disabled = true;
    var result = await request("POST", "/v1/members/otp", { phone: $("phone").value.trim() });
    $("send-code").disabled = false;
    if (!result.ok) { memberError(problemText(result)); return; }
    $("enrol-form").hidden = false;
    $("otp").focus();
  });

  $("enrol-form").addEventListener("submit", async function (event) {
    event.preventDefault();
    memberError("");
    // Both consents are sent as the consumer left them: unticked means no.
    var payload = {
      phone: $("phone").value.trim(),
      otp: $("otp").value.trim(),
      consent_marketing: $("consent-marketing").checked,
      consent_location: $("consent-location").checked
    };
    var profile = {};
    var name = $("profile-name").value.trim();
    if (name) { profile.name = name; }
    if ($("profile-gender").value) { profile.gender = $("profile-gender").value; }
    if ($("profile-birthday").value) { profile.birthday = $("profile-birthday").value; }
    if (Object.keys(profile).length > 0) { payload.profile = profile; }
    $("enrol").disabled = true;
    var result = await request("POST", "/v1/members/enroll", payload);
    $("enrol").disabled = false;
    if (!result.ok || !result.body) { memberError(problemText(result)); return; }
    var member = result.body.member;
    $("member").hidden = true;
    $("enrolled").hidden = false;
    $("enrolled-detail").textContent = fill(t.enrolled_detail, { last4: member.phone_last4 || "" });
    showPoints(member, 0);
  });

  // Prize claim: one form, for the prize this scan won or one picked in the wallet.
  var CLAIM_FIELDS = ["recipient", "phone", "address", "postal_code"];
  var claimTarget = null;

  function claimErrors(errors) {
    var first = null;
    CLAIM_FIELDS.forEach(function (field) {
      var message = errors[field] || "";
      var input = $("claim-" + field);
      $("claim-" + field + "-error").textContent = message;
      $("claim-" + field + "-error").hidden = !message;
      if (message) {
        input.setAttribute("aria-invalid", "true");
        first = first || input;
      } else {
        input.removeAttribute("aria-invalid");
      }
    });
    if (first) { first.focus(); }
  }

  function claimError(text) {
    $("claim-error").textContent = text;
    $("claim-error").hidden = !text;
  }

  function openClaim(prize, focus) {
    claimTarget = prize;
    $("claim-prize").textContent = fill(t.reward_won, { prize: prize.name });
    $("claim-form").hidden = false;
    $("claim-done").hidden = true;
    claimErrors({});
    claimError("");
    $("claim").hidden = false;
    if (focus) {
      $("claim").scrollIntoView({ block: "start", behavior: reducedMotion ? "auto" : "smooth" });
      $("claim-recipient").focus({ preventScroll: true });
    }
  }

  $("claim-form").addEventListener("submit", async function (event) {
    event.preventDefault();
    if (!claimTarget) { return; }
    claimErrors({});
    claimError("");
    var postal = $("claim-postal_code").value.trim();
    var payload = {
      recipient: $("claim-recipient").value.trim(),
      phone: $("claim-phone").value.trim(),
      address: $("claim-address").value.trim(),
      postal_code: postal || null
    };
    var path = "/v1/members/me/prizes/" + encodeURIComponent(claimTarget.campaign_id) + "/" +
      encodeURIComponent(claimTarget.scan_id) + "/claim";
    $("claim-submit").disabled = true;
    var result = await request("POST", path, payload);
    $("claim-submit").disabled = false;
    if (result.ok) {
      $("claim-form").hidden = true;
      $("claim-done").hidden = false;
      if ($("wallet").open) { loadWallet(); }
      return;
    }
    // Field errors go beside their fields, in the page's language; anything else above the button.
    var errors = {};
    ((result.body && result.body.errors) || []).forEach(function (error) {
      if (CLAIM_FIELDS.indexOf(error.field) >= 0) { errors[error.field] = t["claim_err_" + error.field] || error.message; }
    });
    if (Object.keys(errors).length > 0) { claimErrors(errors); } else { claimError(problemText(result)); }
  });

  // Wallet: fetched each time it is opened, so it shows what the last scan or claim changed.
  function rows(list, items, render) {
    list.textContent = "";
    if (items.length === 0) { listItem(list, t.wallet_none); }
    items.forEach(function (entry) {
      var item = document.createElement("li");
      render(entry, item);
      list.appendChild(item);
    });
  }

  function add(parent, tag, className, text) {
    var element = document.createElement(tag);
    if (className) { element.className = className; }
    element.textContent = text;
    parent.appendChild(element);
    return element;
  }

  function ledgerLine(entry, item) {
    add(item, "span", "tag", when(entry.created_at, true));
    add(item, "span", entry.amount >= 0 ? "plus" : "minus", (entry.amount >= 0 ? "+" : "") + entry.amount);
    var what = t["ledger_" + entry.kind] || entry.kind;
    var reason = String(entry.reason || "").replace(/^campaign: /, "");
    item.appendChild(document.createTextNode(" " + what + (reason ? " · " + reason : "")));
  }

  function couponLine(coupon, item) {
    add(item, "span", "tag", t["coupon_" + coupon.status] || coupon.status);
    add(item, "strong", "", coupon.name);
    var terms = [];
    if (coupon.amount_off_cents) { terms.push(fill(t.coupon_amount, { amount: yuan(coupon.amount_off_cents) })); }
    if (coupon.percent_off) { terms.push(fill(t.coupon_percent, { percent: coupon.percent_off })); }
    if (coupon.min_spend_cents > 0) { terms.push(fill(t.coupon_min_spend, { amount: yuan(coupon.min_spend_cents) })); }
    if (terms.length > 0) { item.appendChild(document.createTextNode(" · " + terms.join(" · "))); }
    add(item, "br", "", "");
    add(item, "span", "code", fill(t.coupon_code, { code: coupon.code }));
    item.appendChild(document.createTextNode(" · " + fill(t.coupon_until, { date: when(coupon.valid_until, true) })));
  }

  function prizeLine(prize, item) {
    var status = !prize.needs_claim ? t.prize_delivered
      : prize.claim_status === "shipped" ? t.prize_shipped
        : prize.claim_status ? t.prize_claimed : t.prize_to_claim;
    add(item, "span", "tag", status);
    add(item, "strong", "", prize.name);
    item.appendChild(document.createTextNode(" · " + prize.campaign_name + " · " + when(prize.won_at, true)));
    if (prize.claim_status === "shipped" && prize.tracking_number) {
      add(item, "br", "", "");
      add(item, "span", "code", fill(t.prize_tracking, { carrier: prize.carrier, tracking: prize.tracking_number }));
    }
    if (prize.needs_claim && prize.claim_status !== "shipped") {
      var button = add(item, "button", "inline", prize.claim_status ? t.claim_change : t.claim_open);
      button.type = "button";
      button.addEventListener("click", function () {
        openClaim({ campaign_id: prize.campaign_id, scan_id: prize.scan_id, name: prize.name }, true);
      });
    }
  }

  async function loadWallet() {
    $("wallet-state").textContent = t.wallet_loading;
    var result = await request("GET", "/v1/members/me/rewards?limit=10");
    if (!result.ok || !result.body) {
      $("wallet-state").textContent = problemText(result);
      $("wallet-body").hidden = true;
      return;
    }
    var rewards = result.body;
    $("wallet-state").textContent = "";
    $("wallet-balance").textContent = fill(t.wallet_balance, { points: rewards.balance });
    $("wallet-expiring").textContent = fill(t.wallet_expiring, { points: rewards.expiring_soon });
    $("wallet-expiring").hidden = !(rewards.expiring_soon > 0);
    rows($("wallet-ledger"), rewards.entries || [], ledgerLine);
    rows($("wallet-coupons"), rewards.coupons || [], couponLine);
    rows($("wallet-prizes"), rewards.prizes || [], prizeLine);
    $("wallet-body").hidden = false;
  }

  $("wallet").addEventListener("toggle", function () {
    if ($("wallet").open) { loadWallet(); }
  });

  // Privacy: the notice opens from the consent link; export is a plain download link; erasure asks twice.
  function privacyState(text) {
    $("privacy-state").textContent = text;
    $("privacy-state").hidden = !text;
  }

  $("privacy-link").addEventListener("click", function () { $("privacy").open = true; });

  // Consents: the boxes show what the service holds when the notice opens; each change is sent at once.
  var CONSENT_BOXES = { marketing: "privacy-marketing", location: "privacy-location-use" };

  async function loadConsents() {
    var result = await request("GET", "/v1/members/me");
    if (!result.ok || !result.body) { return; }
    $("privacy-marketing").checked = !!result.body.consent_marketing_at;
    $("privacy-location-use").checked = !!result.body.consent_location_at;
  }

  $("privacy").addEventListener("toggle", function () {
    if ($("privacy").open && !$("privacy-actions").hidden) { loadConsents(); }
  });

  Object.keys(CONSENT_BOXES).forEach(function (name) {
    var box = $(CONSENT_BOXES[name]);
    box.addEventListener("change", async function () {
      var payload = {};
      payload[name] = box.checked;
      box.disabled = true;
      var result = await request("PATCH", "/v1/members/me/consents", payload);
      box.disabled = false;
      if (!result.ok) { box.checked = !box.checked; privacyState(problemText(result)); return; }
      // Withdrawn location consent also stops this browser sending the location with its scans.
      if (name === "location" && !box.checked && load("oc_location") === "yes") { $("location-stop").click(); }
      privacyState(t.privacy_consents_saved);
    });
  });

  $("erase").addEventListener("click", function () {
    $("erase").hidden = true;
    $("erase-confirm").hidden = false;
    $("erase-confirm").focus();
  });

  $("erase-confirm").addEventListener("click", async function () {
    $("erase-confirm").disabled = true;
    var result = await request("DELETE", "/v1/members/me");
    $("erase-confirm").disabled = false;
    if (!result.ok) { privacyState(problemText(result)); return; }
    ["privacy-actions", "wallet-card", "member", "enrolled", "claim"].forEach(function (id) { $(id).hidden = true; });
    privacyState(t.privacy_erased);
  });

  // Location sharing, for the next scans.
  function showLocationChoice() {
    var on = load("oc_location") === "yes";
    $("location-ask").hidden = on;
    $("location-stop").hidden = !on;
    if (on) { $("location-state").textContent = t.location_on; }
  }

  $("location-share").addEventListener("click", async function () {
    if (!$("location-agree").checked) {
      $("location-state").textContent = t.location_need_agree;
      return;
    }
    // Only now, after the consumer agreed on the page, does the browser ask for the position.
    var where = await position();
    if (!where) {
      $("location-state").textContent = t.location_denied;
      return;
    }
    save("oc_location", "yes");
    showLocationChoice();
  });

  $("location-stop").addEventListener("click", function () {
    forget("oc_location");
    $("location-agree").checked = false;
    showLocationChoice();
    $("location-state").textContent = t.location_off;
  });

  showLocationChoice();
  recordScan();
})();
