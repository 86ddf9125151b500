// The consumer page's script: records the scan (POST /v1/scans), shows the verdict, offers enrolment.
// The GET of the page records nothing, since chat apps and link checkers fetch URLs too: only this
// script, run by the consumer's browser, posts the scan. No innerHTML anywhere: text goes in as text.
(function () {
  "use strict";
  var body = document.body;
  var t = JSON.parse(body.getAttribute("data-texts"));
  var lang = body.getAttribute("data-lang");
  var mode = body.getAttribute("data-mode");
  var memory = {};

  function $(id) { return document.getElementById(id); }

  function fill(text, values) {
    return text.replace(/\{(\w+)\}/g, function (match, key) {
      return Object.prototype.hasOwnProperty.call(values, key) ? String(values[key]) : match;
    });
  }

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

  function when(iso) {
    var date = new Date(iso);
    if (!iso || isNaN(date.getTime())) { return ""; }
    try {
      return date.toLocaleString(lang, { dateStyle: "medium", timeStyle: "short" });
    } catch (err) {
      return date.toLocaleString();
    }
  }

  async function postJson(path, payload, headers) {
    var response;
    try {
      response = await fetch(path, {
        method: "POST",
        credentials: "same-origin", // sends and receives the httpOnly oc_member cookie
        headers: Object.assign({ "Content-Type": "application/json" }, headers || {}),
        body: JSON.stringify(payload)
      });
    } catch (err) {
      return { ok: false, status: 0, body: null, retryAfter: null };
    }
    var data = null;
    try { data = await response.json(); } catch (err) { data = null; }
    return { ok: response.ok, status: response.status, body: data, retryAfter: response.headers.get("Retry-After") };
  }

  // Problem responses (RFC 9457) become a sentence in the page's language; the raw detail is English.
  function problemText(result) {
    var problem = result.body || {};
    var type = String(problem.type || "");
    var field = problem.errors && problem.errors[0] ? problem.errors[0].field : "";
    if (result.status === 0) { return t.err_network; }
    if (result.status === 429) {
      var seconds = parseInt(result.retryAfter, 10);
      return seconds > 0 && seconds <= 600 ? fill(t.err_rate_wait, { seconds: seconds }) : t.err_rate;
    }
    if (/\/otp-rejected$/.test(type)) { return t.err_otp; }
    if (field === "phone") { return t.err_phone; }
    if (result.status === 401) { return t.err_token; }
    if (result.status === 400 || result.status === 422) { return t.err_invalid; }
    if (result.status === 503) { return t.err_busy; }
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

  // One key per page view: a retry after a lost answer counts once; a reload is a new scan.
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
    return postJson("/v1/scans", scanPayload, { "Idempotency-Key": idempotencyKey });
  }

  if (mode === "unverified") {
    // Forged codes are still reported: where fakes turn up is what the brand needs to know.
    postScan().then(function (result) { if (result.ok) { $("logged").hidden = false; } });
    return;
  }

  function showVerdict(kind, title, detail) {
    var card = $("verdict");
    card.className = "card " + kind;
    $("verdict-title").textContent = title;
    $("verdict-detail").textContent = detail;
  }

  function showPoints(member) {
    $("verdict-points").textContent = fill(t.points, { points: member.points_balance || 0 });
    $("verdict-points").hidden = false;
  }

  // What the brand's campaigns gave this scan: points earned, a prize won, or "no prize this time".
  function showReward(reward) {
    var list = $("verdict-reward");
    list.textContent = "";
    if (!reward) { list.hidden = true; return; }
    var lines = [];
    if (reward.points > 0) { lines.push(fill(t.reward_points, { points: reward.points })); }
    reward.outcomes.forEach(function (outcome) {
      if (outcome.result === "won" && outcome.prize && outcome.prize.kind !== "points") {
        lines.push(fill(t.reward_won, { prize: outcome.prize.name }));
        if (outcome.prize.needs_claim) { lines.push(t.reward_claim); }
      } else if (outcome.kind === "lucky_draw" && outcome.result !== "won") {
        lines.push(t.reward_no_prize);
      }
    });
    lines.forEach(function (line) {
      var item = document.createElement("li");
      item.textContent = line;
      list.appendChild(item);
    });
    list.hidden = lines.length === 0;
  }

  function showMember(member) {
    if (!member) { return; }
    showPoints(member);
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
    showReward(scan.reward);
    showMember(scan.member);
  }

  async function recordScan() {
    $("retry").hidden = true;
    showVerdict("", t.checking, "");
    var result = await postScan();
    if (result.ok && result.body) {
      showScan(result.body);
      return;
    }
    showVerdict("warn", problemText(result), "");
    // Worth another try when the network, the limits or the service were the problem.
    $("retry").hidden = !(result.status === 0 || result.status === 429 || result.status >= 500);
  }

  function memberError(text) {
    $("member-error").textContent = text;
    $("member-error").hidden = !text;
  }

  $("retry").addEventListener("click", recordScan);

  $("otp-form").addEventListener("submit", async function (event) {
    event.preventDefault();
    memberError("");
    $("send-code").disabled = true;
    var result = await postJson("/v1/members/otp", { phone: $("phone").value.trim() });
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
    var result = await postJson("/v1/members/enroll", payload);
    $("enrol").disabled = false;
    if (!result.ok || !result.body) { memberError(problemText(result)); return; }
    var member = result.body.member;
    $("member").hidden = true;
    $("enrolled").hidden = false;
    $("enrolled-detail").textContent = fill(t.enrolled_detail, { last4: member.phone_last4 || "" });
    showPoints(member);
  });

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
