// The Web Service Demo: builds a form from /demo/operations.json (the service
// definition), sends the real SOAP 1.1 call to /soap, shows both envelopes and the
// decoded answer, and generates sample code for exactly the filled-in call.
// Everything shown goes through textContent: nothing typed is ever parsed as HTML.
// Nothing is stored: values live in this page's memory only.
"use strict";

(function () {
  const SOAP_ENV = "http://schemas.xmlsoap.org/soap/envelope/";
  const PASSWORD_PLACEHOLDER = "YOUR_PASSWORD";
  const PASSWORD_MASK = "********";

  let service = null; // operations.json
  let current = null; // the chosen operation
  const values = {}; // typed values by parameter name, kept across operations

  const $ = (id) => document.getElementById(id);

  // A DOM element; strings become text nodes, never markup.
  function el(tag, attrs, ...children) {
    const node = document.createElement(tag);
    for (const [key, value] of Object.entries(attrs || {})) {
      if (value === null || value === undefined || value === false) continue;
      if (key === "text") node.textContent = value;
      else if (key === "className") node.className = value;
      else node.setAttribute(key, value === true ? "" : String(value));
    }
    for (const child of children) {
      if (child !== null && child !== undefined) node.append(child);
    }
    return node;
  }

  // ---- the form -------------------------------------------------------------

  function renderOperationList() {
    const list = $("operation-list");
    list.replaceChildren();
    for (const op of service.operations) {
      const id = "op-" + op.name;
      const radio = el("input", { type: "radio", name: "operation", id: id, value: op.name });
      radio.addEventListener("change", () => selectOperation(op.name, true));
      const summaryId = op.summary ? id + "-summary" : null;
      if (summaryId) radio.setAttribute("aria-describedby", summaryId);
      list.append(el("div", { className: "operation" }, radio,
        el("label", { for: id }, el("span", { className: "operation-name", text: op.name }),
          op.summary ? el("span", { className: "operation-summary", id: summaryId,
                                    text: op.summary }) : null)));
    }
  }

  function fieldFor(param) {
    const id = "f-" + param.name;
    const hintId = id + "-hint";
    let input;
    if (param.choices) {
      input = el("select", { id: id, name: param.name });
      if (!param.required) input.append(el("option", { value: "", text: "(not sent)" }));
      for (const choice of param.choices) input.append(el("option", { value: choice, text: choice }));
    } else {
      input = el("input", {
        id: id, name: param.name,
        type: param.secret ? "password" : "text",
        inputmode: param.type === "int" ? "numeric" : (param.name === "url" ? "url" : null),
        autocomplete: param.name === "username" ? "username"
          : (param.secret ? "current-password" : "off"),
        autocapitalize: "off", spellcheck: "false",
      });
    }
    if (param.required) input.setAttribute("aria-required", "true");
    input.setAttribute("aria-describedby", hintId);
    // A value typed for another operation carries over; a default choice does not.
    if (values[param.name] !== undefined &&
        (!param.choices || param.choices.includes(values[param.name]) || !values[param.name])) {
      input.value = values[param.name];
    } else {
      input.dataset.untouched = "1";
    }
    input.addEventListener(param.choices ? "change" : "input", () => {
      delete input.dataset.untouched;
      values[param.name] = input.value;
      update();
    });
    const hint = [param.type === "int" ? "integer" : param.type,
                  param.required ? "required" : "optional"];
    if (param.hint) hint.push(param.hint);
    return el("div", { className: "field" + (param.required ? " required" : "") },
      el("label", { for: id }, el("span", { className: "param-name", text: param.name }),
        param.required ? el("span", { className: "required-mark", "aria-hidden": "true",
                                      text: " *" }) : null),
      input,
      el("small", { id: hintId, className: "hint", text: hint.join(" · ") }));
  }

  function selectOperation(name, fromUser) {
    current = service.operations.find((op) => op.name === name) || service.operations[0];
    $("op-" + current.name).checked = true;
    $("operation-name").textContent = current.name;
    $("operation-summary").textContent = current.summary;
    const fields = $("fields");
    fields.replaceChildren(...current.parameters.map(fieldFor));
    if (fromUser && history.replaceState) history.replaceState(null, "", "#" + current.name);
    $("outcome").hidden = true;
    $("status").textContent = "";
    update();
  }

  // The field's value as it is now (autofill does not always fire "input").
  function fieldValue(param) {
    const field = $("f-" + param.name);
    return field ? field.value : "";
  }

  // Remember what was typed, for the other operations; untouched defaults stay out.
  function syncValues() {
    for (const p of current.parameters) {
      const field = $("f-" + p.name);
      if (field && !field.dataset.untouched) values[p.name] = field.value;
    }
  }

  // The call as filled in: [name, value, param] for every non-empty parameter, in
  // WSDL order. An empty field is not sent (the API then names what is missing).
  function filledIn() {
    return current.parameters
      .filter((p) => fieldValue(p) !== "")
      .map((p) => [p.name, fieldValue(p), p]);
  }

  // ---- envelopes ------------------------------------------------------------

  function xmlEscape(text) {
    return String(text).replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;")
      .replace(/"/g, "&quot;").replace(/'/g, "&apos;");
  }

  function buildEnvelope(op, params, password) {
    const lines = [
      '<?xml version="1.0" encoding="UTF-8"?>',
      '<soap:Envelope xmlns:soap="' + SOAP_ENV + '" xmlns:ws="' + xmlEscape(service.namespace) + '">',
      "  <soap:Body>",
      "    <ws:" + op.name + ">",
    ];
    for (const [name, value, param] of params) {
      const shown = param.secret && password !== undefined ? password : value;
      lines.push("      <ws:" + name + ">" + xmlEscape(shown) + "</ws:" + name + ">");
    }
    lines.push("    </ws:" + op.name + ">", "  </soap:Body>", "</soap:Envelope>");
    return lines.join("\n");
  }

  function prettyXml(text) {
    const doc = new DOMParser().parseFromString(text, "application/xml");
    if (doc.getElementsByTagName("parsererror").length) return text;
    const indent = (node, level) => {
      const kids = Array.from(node.childNodes);
      const elements = kids.filter((n) => n.nodeType === Node.ELEMENT_NODE);
      if (!elements.length) return;
      if (kids.some((n) => n.nodeType === Node.TEXT_NODE && n.nodeValue.trim())) return;
      kids.filter((n) => n.nodeType === Node.TEXT_NODE).forEach((n) => node.removeChild(n));
      for (const child of elements) {
        node.insertBefore(doc.createTextNode("\n" + "  ".repeat(level)), child);
        indent(child, level + 1);
      }
      node.appendChild(doc.createTextNode("\n" + "  ".repeat(level - 1)));
    };
    indent(doc.documentElement, 1);
    const declaration = text.trimStart().startsWith("<?xml")
      ? text.trimStart().slice(0, text.trimStart().indexOf("?>") + 2) + "\n" : "";
    return declaration + new XMLSerializer().serializeToString(doc.documentElement);
  }

  // ---- decoding the answer --------------------------------------------------

  const children = (node) => Array.from(node.children);
  const childText = (node, name) => {
    const child = children(node).find((c) => c.localName === name);
    return child ? child.textContent : null;
  };

  function decode(text, op) {
    const doc = new DOMParser().parseFromString(text, "application/xml");
    if (!text.trim() || doc.getElementsByTagName("parsererror").length) {
      return { kind: "unreadable" };
    }
    const fault = doc.getElementsByTagNameNS(SOAP_ENV, "Fault")[0];
    if (fault) {
      return { kind: "fault", code: childText(fault, "faultcode"),
               reason: childText(fault, "faultstring") };
    }
    const all = Array.from(doc.getElementsByTagName("*"));
    const holder = all.find((n) => n.localName === op.resultElement);
    if (!holder) return { kind: "unreadable" };
    return {
      kind: "result",
      error: childText(holder, "error"),
      message: childText(holder, "message"),
      result: children(holder).find((c) => c.localName === "result") || null,
    };
  }

  // Text split into pieces with a line-break opportunity (<wbr>) where ``at``
  // matches: the text stays exactly as it was (copy, screen readers), only the
  // lines may break there.
  function breakable(text, at) {
    const out = [];
    text.split(at).forEach((piece, i) => {
      if (i) out.push(el("wbr"));
      out.push(piece);
    });
    return out;
  }

  const UTC_TIME = /^(\d{4}-\d\d-\d\d)T(\d\d:\d\d:\d\d)(\.\d+)?(Z|\+00:00)$/;
  const CLIP_AT = 24;

  // A simple value in a table of records, kept narrow so that a whole record fits
  // the screen: a UTC time shown as date and time (two lines), a long value (URL,
  // error, secret) cut short with an ellipsis; the full text is the title (shown
  // on hover) and stays in the page for copying and screen readers.
  function cellValue(node) {
    const text = node.textContent;
    const time = UTC_TIME.exec(text);
    if (time) {
      return el("span", { className: "value time", title: text },
                el("span", { className: "date", text: time[1] }),
                el("span", { className: "visually-hidden", text: "T" }), time[2],
                el("span", { className: "visually-hidden", text: (time[3] || "") + time[4] }));
    }
    if (text.length > CLIP_AT) {
      return el("span", { className: "value clip", title: text, text: text });
    }
    return el("span", { className: "value" }, ...breakable(text, /(?<=_)/));
  }

  // A result element as HTML: a list of records as a table, a record as a
  // name/value table, a simple value as text.
  function renderValue(node) {
    const kids = children(node);
    if (!kids.length) return el("span", { className: "value", text: node.textContent });
    const names = new Set(kids.map((k) => k.localName));
    if (names.size === 1 && kids.every((k) => k.children.length)) {
      const columns = [];
      for (const row of kids) {
        for (const cell of children(row)) {
          if (!columns.includes(cell.localName)) columns.push(cell.localName);
        }
      }
      const table = el("table", { className: "records" },
        el("caption", { text: kids.length + " × " + kids[0].localName }),
        el("thead", {}, el("tr", {}, ...columns.map((c) => el("th", { scope: "col" },
          ...breakable(c, /(?=[A-Z])/))))));
      const body = el("tbody");
      for (const row of kids) {
        body.append(el("tr", {}, ...columns.map((c) => {
          const cell = children(row).find((x) => x.localName === c);
          return el("td", { className: "col-" + c },
                    cell ? (children(cell).length ? renderValue(cell) : cellValue(cell)) : "");
        })));
      }
      table.append(body);
      return el("div", { className: "table-scroll", tabindex: "0" }, table);
    }
    const table = el("table", { className: "record" });
    for (const kid of kids) {
      table.append(el("tr", {}, el("th", { scope: "row", text: kid.localName }),
                      el("td", {}, renderValue(kid))));
    }
    return el("div", { className: "table-scroll", tabindex: "0" }, table);
  }

  function showDecoded(op, answer, httpStatus) {
    const box = $("decoded");
    box.replaceChildren();
    let status;
    if (answer.kind === "fault") {
      status = "SOAP Fault " + answer.code + ": " + answer.reason;
      box.append(el("dl", { className: "envelope fault" },
        el("dt", { text: "fault" }), el("dd", { id: "fault-code", text: answer.code }),
        el("dt", { text: "reason" }), el("dd", { id: "fault-reason", text: answer.reason }),
        el("dt", { text: "means" }),
        el("dd", { text: "The request itself was refused (not well-formed SOAP, unknown " +
                         "operation or a value of the wrong type); nothing was changed." })));
    } else if (answer.kind === "unreadable") {
      status = "The server's answer (HTTP " + httpStatus + ") is not a SOAP envelope.";
      box.append(el("p", { className: "notice error", text: status }));
    } else {
      const meaning = service.errors[answer.error] || "unknown error code";
      status = op.name + ": error " + answer.error + " (" + meaning + "): " + answer.message;
      let result = el("span", { className: "absent", text: "(none)" });
      if (answer.result && !answer.result.children.length && !answer.result.textContent) {
        result = el("span", { className: "absent", text: "(empty)" }); // e.g. no webhooks
      } else if (answer.result) {
        result = renderValue(answer.result);
      }
      box.append(el("dl", { className: "envelope" + (answer.error === "0" ? " ok" : " failed") },
        el("dt", { text: "error" }),
        el("dd", {}, el("span", { id: "result-error", className: "error-code", text: answer.error }),
           " ", el("span", { id: "result-error-meaning", text: meaning })),
        el("dt", { text: "message" }), el("dd", { id: "result-message", text: answer.message }),
        el("dt", { text: "result" }), el("dd", { id: "result-value" }, result)));
    }
    $("status").textContent = status;
  }

  async function run(event) {
    event.preventDefault();
    const op = current;
    syncValues();
    update();
    const params = filledIn();
    const body = buildEnvelope(op, params);
    const includePassword = $("include-password").checked;
    const button = $("run");
    button.disabled = true;
    $("outcome").hidden = false;
    $("status").textContent = "Running " + op.name + "…";
    $("decoded").replaceChildren();
    $("request").textContent = includePassword ? body : buildEnvelope(op, params, PASSWORD_MASK);
    $("request-note").textContent = "POST " + service.soapPath + ", SOAPAction: \"" + op.name +
      "\"" + (includePassword ? "" : " (password hidden: tick the box above to show it)");
    $("response").textContent = "";
    $("http-status").textContent = "";
    try {
      const response = await fetch(service.soapPath, {
        method: "POST", body: body, credentials: "omit", cache: "no-store",
        headers: { "Content-Type": "text/xml; charset=utf-8", "SOAPAction": '"' + op.name + '"' },
      });
      const text = await response.text();
      $("http-status").textContent = "HTTP " + response.status + " " + response.statusText;
      $("response").textContent = prettyXml(text);
      const answer = decode(text, op);
      showDecoded(op, answer, response.status);
      if (answer.kind === "result" && answer.error === "0" && answer.result &&
          op.name.startsWith("Create")) {
        const id = childText(answer.result, "id");
        if (id) values.webhookId = id; // handy for the next operation
      }
    } catch (error) {
      $("status").textContent = "The call failed: " + error.message;
    } finally {
      button.disabled = false;
      document.body.dataset.calls = String(Number(document.body.dataset.calls || 0) + 1);
    }
  }

  // ---- sample code ----------------------------------------------------------

  const isInt = (value) => /^-?[0-9]+$/.test(value);
  const phpString = (s) => "'" + String(s).replace(/\\/g, "\\\\").replace(/'/g, "\\'") + "'";
  const pyString = (s) => JSON.stringify(String(s)); // a JSON string is a Python literal
  const shellQuote = (s) => "'" + String(s).replace(/'/g, "'\\''") + "'";

  // The parameters for code: the password as typed only when the box is ticked.
  function codeParams() {
    const include = $("include-password").checked;
    const params = current.parameters.map((p) => {
      const value = fieldValue(p);
      if (p.secret) return [p.name, include && value ? value : PASSWORD_PLACEHOLDER, p];
      return [p.name, value, p];
    });
    return params.filter(([, value]) => value !== "");
  }

  // An integer as a literal ("010" is octal in PHP and an error in Python): BigInt
  // normalises it without losing digits.
  function typed(value, param, quote) {
    return param.type === "int" && isInt(value) ? BigInt(value).toString() : quote(value);
  }

  function phpSample(op, params) {
    const args = params.map(([n, v, p]) => "    " + phpString(n) + " => " + typed(v, p, phpString) + ",");
    return [
      "<?php",
      "// " + op.name + " as filled in on the soapservice Web Service Demo",
      "$client = new SoapClient(" + phpString(service.wsdlUrl) + ", [",
      "    'features' => SOAP_SINGLE_ELEMENT_ARRAYS, // a list of one stays a list",
      "    'exceptions' => true,",
      "]);",
      "$r = $client->" + op.name + "([",
      ...args,
      "]);",
      "$result = $r->" + op.resultElement + ";",
      "if ($result->error !== 0) {",
      '    fwrite(STDERR, "error {$result->error}: {$result->message}\\n");',
      "    exit(1);",
      "}",
      'echo $result->message, "\\n";',
      "print_r($result->result ?? null);",
      "",
    ].join("\n");
  }

  function pythonSample(op, params) {
    return [
      "# " + op.name + " as filled in on the soapservice Web Service Demo",
      "from zeep import Client",
      "",
      "client = Client(" + pyString(service.wsdlUrl) + ")",
      "r = client.service." + op.name + "(",
      ...params.map(([n, v, p]) => "    " + n + "=" + typed(v, p, pyString) + ","),
      ")",
      "if r.error != 0:",
      '    raise SystemExit(f"error {r.error}: {r.message}")',
      "print(r.message)",
      "print(r.result)",
      "",
    ].join("\n");
  }

  function curlSoapSample(op, params) {
    const envelope = buildEnvelope(op, params);
    return [
      "curl -sS " + shellQuote(service.baseUrl + service.soapPath) + " \\",
      "  -H 'Content-Type: text/xml; charset=utf-8' \\",
      "  -H " + shellQuote('SOAPAction: "' + op.name + '"') + " \\",
      "  --data-binary " + shellQuote(envelope),
      "",
    ].join("\n");
  }

  function curlJsonSample(op, params) {
    const body = {};
    for (const [n, v, p] of params) {
      const safe = p.type === "int" && isInt(v) && Number.isSafeInteger(Number(v));
      body[n] = safe ? Number(v) : v;
    }
    return [
      "curl -sS " + shellQuote(service.baseUrl + service.jsonPath + op.name) + " \\",
      "  -H 'Content-Type: application/json' \\",
      "  --data-binary " + shellQuote(JSON.stringify(body, null, 2)),
      "",
    ].join("\n");
  }

  const SAMPLES = [
    { id: "php", title: "PHP (SoapClient)", make: phpSample,
      note: "Needs the soap extension (Debian: php-soap)." },
    { id: "python", title: "Python (zeep)", make: pythonSample, note: "pip install zeep" },
    { id: "curl", title: "curl (SOAP 1.1 envelope)", make: curlSoapSample, note: "" },
    { id: "json", title: "curl (JSON mirror)", make: curlJsonSample,
      note: "The same operation at /json/" + "<Operation>, answering the envelope as JSON." },
  ];

  function renderSamples() {
    const list = $("sample-list");
    for (const sample of SAMPLES) {
      const titleId = "sample-" + sample.id + "-title";
      const copyStatus = el("span", { className: "copy-status", id: "copy-" + sample.id + "-status",
                                      role: "status", "aria-live": "polite" });
      const button = el("button", { type: "button", className: "copy", id: "copy-" + sample.id,
                                    "aria-describedby": titleId, text: "Copy" });
      button.addEventListener("click", () => copy($("sample-" + sample.id).textContent, copyStatus));
      list.append(el("section", { className: "sample", "aria-labelledby": titleId },
        el("div", { className: "sample-head" }, el("h3", { id: titleId, text: sample.title }),
           button, copyStatus),
        sample.note ? el("p", { className: "note", text: sample.note }) : null,
        el("pre", { className: "code", tabindex: "0" },
           el("code", { id: "sample-" + sample.id }))));
    }
  }

  function update() {
    if (!current) return;
    const params = codeParams();
    for (const sample of SAMPLES) $("sample-" + sample.id).textContent = sample.make(current, params);
    $("samples-note").textContent = "For exactly the " + current.name + " call filled in above" +
      ($("include-password").checked ? ", with your password: keep it out of shared code."
        : "; the password is the placeholder " + PASSWORD_PLACEHOLDER +
          " (tick the box above to include yours).");
  }

  async function copy(text, statusNode) {
    let done = false;
    try {
      await navigator.clipboard.writeText(text);
      done = true;
    } catch (error) {
      // No async clipboard (plain http on another host): copy through a selection.
      const area = el("textarea", { className: "offscreen", readonly: true, "aria-hidden": "true" });
      area.value = text;
      document.body.append(area);
      area.select();
      try { done = document.execCommand("copy"); } catch (e) { done = false; }
      area.remove();
    }
    statusNode.textContent = done ? "Copied" : "Copy failed: select the code and copy it";
    setTimeout(() => { statusNode.textContent = ""; }, 4000);
  }

  // ---- start ----------------------------------------------------------------

  async function start() {
    try {
      const response = await fetch("/demo/operations.json", { cache: "no-store" });
      if (!response.ok) throw new Error("HTTP " + response.status);
      service = await response.json();
    } catch (error) {
      const box = $("load-error");
      box.textContent = "Could not load the service description: " + error.message;
      box.hidden = false;
      return;
    }
    renderOperationList();
    renderSamples();
    $("demo-form").addEventListener("submit", run);
    $("include-password").addEventListener("change", update);
    $("demo-form").hidden = false;
    $("samples").hidden = false;
    const fromHash = () => selectOperation(decodeURIComponent(location.hash.slice(1)), false);
    window.addEventListener("hashchange", fromHash);
    fromHash();
    document.body.dataset.ready = "1";
  }

  document.addEventListener("DOMContentLoaded", start);
}());
