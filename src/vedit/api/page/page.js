// vedit's page: a client of the public API (uploads, create, query, cancel), with no build
// step and no dependency. The key and this browser's task list live in localStorage.
"use strict";

const MODEL = "happyhorse-1.0-video-edit";
const KEY_STORE = "vedit.key";
const TASKS_STORE = "vedit.tasks";
const MAX_TASKS = 50;
const POLL_FIRST_MS = 1000;
const POLL_MAX_MS = 10000;
const POLL_OFFLINE_MAX_MS = 30000;
const SEED_MAX = 2147483647;

const $ = (id) => document.getElementById(id);

// --- storage (a browser may refuse it: private mode, quota) ------------------------------

function readStore(name, fallback) {
  try {
    const raw = localStorage.getItem(name);
    return raw === null ? fallback : JSON.parse(raw);
  } catch (_e) {
    return fallback;
  }
}

function writeStore(name, value) {
  try {
    if (value === null) localStorage.removeItem(name);
    else localStorage.setItem(name, JSON.stringify(value));
  } catch (_e) {
    /* not kept: the page still works for this visit */
  }
}

// --- talking to the API ----------------------------------------------------------------

function currentKey() {
  return $("key").value.trim().replace(/^bearer\s+/i, "");
}

/** One JSON call: {status, data, retryAfter}; status 0 when the server did not answer. */
async function api(method, path, body) {
  const headers = { Authorization: `Bearer ${currentKey()}` };
  if (body !== undefined) headers["Content-Type"] = "application/json";
  let response;
  try {
    response = await fetch(path, {
      method,
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
      cache: "no-store",
    });
  } catch (_e) {
    return { status: 0, data: null, retryAfter: null };
  }
  let data = null;
  try {
    data = await response.json();
  } catch (_e) {
    data = null;
  }
  return { status: response.status, data, retryAfter: response.headers.get("Retry-After") };
}

/** Upload one file through POST /v1/uploads, reporting progress (0..1) as it goes. */
function upload(file, onProgress) {
  return new Promise((resolve) => {
    const xhr = new XMLHttpRequest();
    xhr.open("POST", "/v1/uploads");
    xhr.setRequestHeader("Authorization", `Bearer ${currentKey()}`);
    xhr.responseType = "text";
    xhr.upload.addEventListener("progress", (e) => {
      if (e.lengthComputable) onProgress(e.loaded / e.total);
    });
    xhr.addEventListener("load", () => {
      let data = null;
      try {
        data = JSON.parse(xhr.responseText);
      } catch (_e) {
        data = null;
      }
      resolve({ status: xhr.status, data, retryAfter: xhr.getResponseHeader("Retry-After") });
    });
    const gone = () => resolve({ status: 0, data: null, retryAfter: null });
    xhr.addEventListener("error", gone);
    xhr.addEventListener("abort", gone);
    xhr.addEventListener("timeout", gone);
    const form = new FormData();
    form.append("file", file, file.name);
    xhr.send(form);
  });
}

/** An API answer that is not a success, in plain words: what happened, and what to do. */
function explain(res, action, kind) {
  if (res.status === 0) {
    return {
      text: `Could not ${action}: the server at ${location.host} did not answer.`,
      hint: "Check that vedit serve is still running and that this computer is online, then try again.",
    };
  }
  const d = res.data || {};
  const said = d.message || (d.error && d.error.message) || `the server answered HTTP ${res.status}`;
  const text = `Could not ${action}: ${said}.`.replace(/\.\.$/, ".");
  const wait = res.retryAfter ? `${res.retryAfter} s` : "a moment";
  let hint = "";
  if (res.status === 401) {
    hint = "Check the key: paste the key that vedit serve printed at its first start, or make one with vedit keys create.";
  } else if (res.status === 413) {
    hint = kind === "upload"
      ? "The file is too large for this server: pick a smaller one (videos up to 100 MB, images up to 10 MB by default)."
      : "The request is too large: shorten the prompt.";
  } else if (res.status === 400) {
    hint = kind === "upload"
      ? "Choose another file, within the limits shown under its box."
      : "Correct what it names and submit again.";
  } else if (res.status === 404 && kind === "upload") {
    hint = "This server takes no uploads: give the file's URL instead.";
  } else if (res.status === 429) {
    hint = `Too many requests with this key: wait ${wait} and try again.`;
  } else if (res.status === 503) {
    hint = `The server is busy: try again in ${wait}.`;
  } else if (res.status === 408) {
    hint = "The connection was too slow: try again.";
  } else if (res.status >= 500) {
    hint = "The server failed; its log has the details. Try again later.";
  }
  return { text, hint };
}

function showError(box, problem) {
  box.replaceChildren();
  if (!problem) {
    box.hidden = true;
    return;
  }
  const text = document.createElement("p");
  text.textContent = problem.text;
  box.append(text);
  if (problem.hint) {
    const hint = document.createElement("p");
    hint.className = "hint";
    hint.textContent = problem.hint;
    box.append(hint);
  }
  box.hidden = false;
}

// --- the key -------------------------------------------------------------------------------

function setupKey() {
  const key = $("key");
  const remember = $("remember");
  const saved = readStore(KEY_STORE, null);
  if (typeof saved === "string" && saved) {
    key.value = saved;
    remember.checked = true;
  }
  const keep = () => writeStore(KEY_STORE, remember.checked && currentKey() ? currentKey() : null);
  key.addEventListener("input", () => {
    keep();
    resumePolling();
  });
  remember.addEventListener("change", keep);
  $("forget").addEventListener("click", () => {
    key.value = "";
    remember.checked = false;
    writeStore(KEY_STORE, null);
    $("form-status").textContent = "The key is forgotten: it is no longer kept in this browser.";
    key.focus();
  });
}

// --- picking media ----------------------------------------------------------------------------

const uploaded = new WeakMap(); // File -> the upload's answer, reused while it is valid
const SNIFF_BYTES = 64;
const ACCEPTED = { video: "MP4 or MOV (H.264 recommended)", image: "JPEG, PNG, BMP or WEBP" };
const QT_ATOMS = ["ftyp", "moov", "mdat", "wide", "free", "skip", "pnot"];

/** What a file's first bytes show it to be, as the server sniffs them: {kind, ok, what};
 *  ok is false for a format the API refuses (what names it); null when nothing is known. */
function sniffHead(b) {
  const text = (from, to) => String.fromCharCode(...b.slice(from, to));
  const starts = (...bytes) => bytes.every((v, i) => b[i] === v);
  if (starts(0x89, 0x50, 0x4e, 0x47)) return { kind: "image", ok: true };
  if (starts(0xff, 0xd8, 0xff)) return { kind: "image", ok: true };
  if (text(0, 4) === "RIFF" && text(8, 12) === "WEBP") return { kind: "image", ok: true };
  if (text(0, 2) === "BM" && b.length >= 26) return { kind: "image", ok: true };
  if (QT_ATOMS.includes(text(4, 8))) return { kind: "video", ok: true };
  if (text(0, 4) === "RIFF" && text(8, 12) === "AVI ") return { kind: "video", ok: false, what: "an AVI video" };
  if (starts(0x1a, 0x45, 0xdf, 0xa3)) return { kind: "video", ok: false, what: "a Matroska or WebM video" };
  if (text(0, 3) === "FLV") return { kind: "video", ok: false, what: "an FLV video" };
  if (starts(0x30, 0x26, 0xb2, 0x75)) return { kind: "video", ok: false, what: "a WMV (ASF) video" };
  if (starts(0x00, 0x00, 0x01, 0xba) || starts(0x00, 0x00, 0x01, 0xb3)) return { kind: "video", ok: false, what: "an MPEG video" };
  if (text(0, 4) === "GIF8") return { kind: "image", ok: false, what: "a GIF image" };
  if (starts(0x49, 0x49, 0x2a, 0x00) || starts(0x4d, 0x4d, 0x00, 0x2a)) return { kind: "image", ok: false, what: "a TIFF image" };
  return null;
}

/** The command that converts ``name`` (of ``kind``) into a file this server takes. */
function convertCommand(name, kind) {
  const quote = (n) => (/^[\w.,+@%/-]+$/.test(n) ? n : `'${n.replace(/'/g, "'\\''")}'`);
  const stem = name.replace(/\.[^.]*$/, "") || kind;
  let out = `${stem}.${kind === "video" ? "mp4" : "png"}`;
  if (out === name) out = `${stem}-converted.${kind === "video" ? "mp4" : "png"}`;
  return `vedit convert ${quote(name)} ${quote(out)}`;
}

/** Why the picked ``f`` cannot be this box's ``kind`` (a problem to show), or null. Only its
 *  first bytes are read, as the server reads them: the name and type say nothing. */
async function pickProblem(f, kind) {
  let head;
  try {
    head = new Uint8Array(await f.slice(0, SNIFF_BYTES).arrayBuffer());
  } catch (_e) {
    return { text: `${f.name} cannot be read.`, hint: "Choose the file again." };
  }
  const found = sniffHead(head);
  const a = kind === "video" ? "a video" : "an image";
  if (found && found.kind !== kind) {
    return {
      text: `${f.name} is ${found.kind === "video" ? "a video" : "an image"}, not ${a}.`,
      hint: kind === "video" ? "Pick the clip here, and the picture under Reference image." : "Pick the picture here, and the clip under Video.",
    };
  }
  if (found && found.ok) return null;
  const into = kind === "video" ? "an H.264 MP4" : "a PNG";
  const how = `Convert it into ${into} on your computer with vedit (no ffmpeg needed): ${convertCommand(f.name, kind)}` +
    (kind === "video" ? ` — or vedit submit ${f.name} … --convert converts and submits it in one go.` : ".");
  if (found) {
    return { text: `${f.name} is ${found.what}: this server takes ${a} as ${ACCEPTED[kind]}.`, hint: how };
  }
  return {
    text: `${f.name} is not ${a} this server can take: it does not start like ${ACCEPTED[kind].replace(" (H.264 recommended)", "")}.`,
    hint: `Choose ${a} in ${ACCEPTED[kind]}. ${how}`,
  };
}

function sizeText(bytes) {
  if (bytes >= 1e6) return `${(bytes / 1e6).toFixed(1)} MB`;
  if (bytes >= 1e3) return `${Math.round(bytes / 1e3)} kB`;
  return `${bytes} bytes`;
}

/** One media box (video or image): file input, drop zone, preview, URL field, upload bar. */
function mediaBox(kind) {
  const file = $(`${kind}-file`);
  const drop = $(`${kind}-drop`);
  const url = $(`${kind}-url`);
  const picked = $(`${kind}-picked`);
  const preview = $(`${kind}-preview`);
  const bar = $(`${kind}-upload`);
  const progress = $(`${kind}-progress`);
  const barText = $(`${kind}-upload-text`);
  const wanted = kind === "video" ? "video/" : "image/";
  let chosen = null;
  let previewUrl = null;
  let checking = Promise.resolve();
  let refused = null; // why the file picked last was dropped

  const show = (f) => {
    chosen = f;
    if (previewUrl) URL.revokeObjectURL(previewUrl);
    previewUrl = null;
    bar.hidden = true;
    if (!f) {
      picked.hidden = true;
      preview.removeAttribute("src");
      file.value = "";
      return;
    }
    previewUrl = URL.createObjectURL(f);
    preview.src = previewUrl;
    $(`${kind}-name`).textContent = `${f.name} (${sizeText(f.size)})`;
    picked.hidden = false;
    url.value = "";
  };

  /** Pick ``f``, then read its first bytes: one the server would refuse is dropped again,
   *  saying what it is, what is taken and how to convert it. */
  const pick = (f) => {
    show(f);
    refused = null;
    if (!f) return;
    checking = pickProblem(f, kind).then((problem) => {
      if (!problem || chosen !== f) return;
      show(null);
      refused = problem;
      showError($("form-error"), problem);
    });
  };

  file.addEventListener("change", () => {
    showError($("form-error"), null);
    pick(file.files[0] || null);
  });
  url.addEventListener("input", () => {
    if (url.value.trim() && chosen) show(null);
    refused = null;
  });
  $(`${kind}-clear`).addEventListener("click", () => {
    show(null);
    refused = null;
    file.focus();
  });
  drop.addEventListener("dragover", (e) => {
    e.preventDefault();
    drop.classList.add("over");
  });
  drop.addEventListener("dragleave", () => drop.classList.remove("over"));
  drop.addEventListener("drop", (e) => {
    e.preventDefault();
    drop.classList.remove("over");
    const f = e.dataTransfer && e.dataTransfer.files[0];
    if (!f) return;
    if (f.type && !f.type.startsWith(wanted)) {
      showError($("form-error"), {
        text: `${f.name} is not ${kind === "video" ? "a video" : "an image"} file.`,
        hint: kind === "video" ? "Drop an MP4 or MOV clip here." : "Drop a JPEG, PNG, BMP or WEBP picture here.",
      });
      return;
    }
    showError($("form-error"), null);
    pick(f);
  });

  return {
    kind,
    label: kind === "video" ? "the video" : "the reference image",
    file: () => chosen,
    url: () => url.value.trim(),
    urlField: url,
    fileField: file,
    /** Until the picked file's first bytes are checked. */
    checked: () => checking,
    /** Why the file picked last was dropped (a problem), or null. */
    refused: () => refused,
    /** The URL to send for this medium: the file's upload (made now, or reused) or the URL. */
    async resolve() {
      if (!chosen) return { url: this.url() };
      const before = uploaded.get(chosen);
      if (before && before.expires_at * 1000 > Date.now() + 60000) return { url: before.url };
      const f = chosen;
      bar.hidden = false;
      progress.value = 0;
      barText.textContent = `Uploading ${f.name}: 0 % of ${sizeText(f.size)}`;
      const res = await upload(f, (share) => {
        const pct = Math.floor(share * 100);
        progress.value = pct;
        barText.textContent = `Uploading ${f.name}: ${pct} % of ${sizeText(f.size)}`;
      });
      if (res.status !== 200 || !res.data || !res.data.url) {
        barText.textContent = "Upload failed";
        return { problem: explain(res, `upload ${this.label}`, "upload") };
      }
      progress.value = 100;
      barText.textContent = `Uploaded ${f.name}`;
      uploaded.set(f, res.data);
      return { url: res.data.url };
    },
  };
}

// --- submitting --------------------------------------------------------------------------------

function readSeed() {
  const field = $("seed");
  if (field.validity.badInput) return { problem: true };
  const raw = field.value.trim();
  if (!raw) return { seed: null };
  const n = Number(raw);
  if (!Number.isInteger(n) || n < 0 || n > SEED_MAX) return { problem: true };
  return { seed: n };
}

function setupForm(video, image) {
  const form = $("edit-form");
  const status = $("form-status");
  const errorBox = $("form-error");
  const submit = $("submit");

  const refuse = (text, hint, field) => {
    showError(errorBox, { text, hint });
    status.textContent = "";
    if (field) field.focus();
  };

  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    await Promise.all([video.checked(), image.checked()]);
    showError(errorBox, null);
    if (!currentKey()) {
      return refuse("Paste your API key first.", "vedit serve printed it at its first start; vedit keys create makes another.", $("key"));
    }
    for (const box of [video, image]) {
      if (!box.file() && !box.url()) {
        const why = box.refused();  // the file picked last was refused: say why again
        if (why) return refuse(why.text, why.hint, box.fileField);
        return refuse(`Choose ${box.label} or give its URL.`, "", box.fileField);
      }
      if (!box.file() && !/^https?:\/\/\S+$/i.test(box.url())) {
        return refuse(`The URL of ${box.label} must start with http:// or https://.`, "", box.urlField);
      }
    }
    const prompt = $("prompt").value;
    if (!prompt.trim()) {
      return refuse("Write a prompt: what should change in the video?", "", $("prompt"));
    }
    const seed = readSeed();
    if (seed.problem) {
      return refuse("The seed must be a whole number from 0 to 2147483647.", "Leave it empty for a random one.", $("seed"));
    }

    submit.disabled = true;
    try {
      const urls = [];
      for (const box of [video, image]) {
        if (box.file()) status.textContent = `Uploading ${box.label}…`;
        const got = await box.resolve();
        if (got.problem) {
          showError(errorBox, got.problem);
          status.textContent = "";
          return;
        }
        urls.push(got.url);
      }
      status.textContent = "Creating the task…";
      const parameters = {
        resolution: $("resolution").value,
        watermark: $("watermark").checked,
        audio_setting: $("audio").value,
      };
      if (seed.seed !== null) parameters.seed = seed.seed;
      const body = {
        model: MODEL,
        input: {
          prompt,
          media: [
            { type: "video", url: urls[0] },
            { type: "reference_image", url: urls[1] },
          ],
        },
        parameters,
      };
      const res = await api("POST", "/v1/video/generations", body);
      if (res.status !== 200 || !res.data || !res.data.task_id) {
        showError(errorBox, explain(res, "create the task", "create"));
        status.textContent = "";
        return;
      }
      addTask({
        id: res.data.task_id,
        prompt,
        source: urls[0],
        image: urls[1],
        resolution: parameters.resolution,
        created: Date.now(),
        status: "QUEUED",
        progress: 0,
      });
      status.textContent = "Task created: it is at the top of your tasks.";
    } finally {
      submit.disabled = false;
    }
  });
}

// --- the task list -------------------------------------------------------------------------------

let tasks = [];
const cards = new Map(); // task id -> {el, timer, delay, misses, paused}

function saveTasks() {
  writeStore(TASKS_STORE, tasks.slice(0, MAX_TASKS));
}

function isFinal(t) {
  return t.status === "SUCCESS" || t.status === "FAILURE" || t.gone;
}

// What each operation does, once the video is made (done) and while it is being made.
const OPERATIONS = {
  color_grade: ["The colours and light of the video were matched to the reference image (its look).",
    "The colours and light of the video will be matched to the reference image (its look)."],
  replace_background: ["The background was replaced by the reference image; the person was kept.",
    "The background will be replaced by the reference image; the person will be kept."],
  restyle_clothing: ["The upper-body clothing was re-dressed in the reference image's colours and texture.",
    "The upper-body clothing will be re-dressed in the reference image's colours and texture."],
  stylize: ["Every frame was redrawn in a style, tinted toward the reference image's colour.",
    "Every frame will be redrawn in a style, tinted toward the reference image's colour."],
  none: ["The video was passed through without an edit.", "The video will be passed through without an edit."],
  relay: ["The upstream model made the edit.", "The upstream model is making the edit."],
};
const ASKED = {
  color_grade: "the reference's look",
  replace_background: "a new background",
  restyle_clothing: "new clothing",
  stylize: "a style",
  none: "no edit",
};

/** The edit plan of the query answer (output.edit_plan), as sentences: in the past tense
 *  once the video is made (``done``), in the future while it is being made. */
function planWords(plan, done) {
  const words = [];
  const tense = done ? 0 : 1;
  let what = (OPERATIONS[plan.operation] || [])[tense] || `Operation: ${plan.operation}.`;
  if (plan.operation === "stylize" && plan.style) {
    const style = String(plan.style).replace(/_/g, " ");
    what = `Every frame ${done ? "was" : "will be"} redrawn as ${style}, tinted toward the reference image's colour.`;
  }
  if (done && plan.applied === false && !plan.fallback_from) {
    what = `Not applied: ${what.charAt(0).toLowerCase()}${what.slice(1)}`;
  }
  words.push(what);
  if (plan.matched === false) {
    words.push(`The prompt named no edit vedit knows, so ${done ? "it made" : "it makes"} the default: the reference's look.`);
  }
  if (plan.fallback_from) {
    words.push(`The prompt asked for ${ASKED[plan.fallback_from] || plan.fallback_from}; this ${done ? "was" : "is"} done instead.`);
  }
  const sampledInWords = typeof plan.because === "string" && plan.because.includes("sampled");
  if (!sampledInWords && typeof plan.sampled_frames === "number" && typeof plan.sampled_with_person === "number") {
    words.push(`Person check: a person was found in ${plan.sampled_with_person} of ${plan.sampled_frames} frames sampled from the clip.`);
  }
  if (done && typeof plan.person_frame_share === "number") {
    words.push(`The person was found and edited in ${Math.round(plan.person_frame_share * 100)} % of the frames.`);
  }
  if (plan.because) words.push(`Why: ${plan.because}.`.replace(/\.\.$/, "."));
  if (plan.upstream_task_id) words.push(`Upstream task: ${plan.upstream_task_id}.`);
  return words;
}

// What was not made, when the plan says the edit asked for was not (see planNotice).
const NOT_MADE = {
  replace_background: ["The background was not replaced", "The background will not be replaced"],
  restyle_clothing: ["The clothing was not changed", "The clothing will not be changed"],
  stylize: ["The style was not drawn", "The style will not be drawn"],
  color_grade: ["The look was not applied", "The look will not be applied"],
};

/** A notice when the edit asked for was not (or will not be) made: the plan fell back to
 *  another edit (``fallback_from``), or a person edit found nobody while editing (``applied``
 *  false); with the reason, from the plan. "" when the edit is made as asked. */
function planNotice(plan, done) {
  const asked = plan.fallback_from || (done && plan.applied === false ? plan.operation : "");
  if (!asked || asked === "none") return "";
  const tense = done ? 0 : 1;
  const what = (NOT_MADE[asked] || [])[tense] || `The edit asked for (${asked}) ${done ? "was" : "will be"} not made`;
  const parts = typeof plan.because === "string" ? plan.because.split("; ") : [];
  const why = parts.slice(1).join("; ").replace(/^but /, "");
  return `${what}${why ? `: ${why}` : ""}.`;
}

const FAILURE_HINTS = [
  ["InvalidURL.Refused", "The server fetches media only from public addresses: upload the file from this computer instead, or start vedit serve with --media-allow host:port."],
  ["InvalidURL", "Check that the link opens in a browser and is public."],
  ["InvalidFile", "Use a file within the limits: a video MP4 or MOV, 3–60 s, above 8 fps, short side at least 360 px; an image JPEG, PNG, BMP or WEBP, each side at least 300 px."],
  ["InternalError.ModelUnavailable", "This server cannot make this edit until its operator installs what it names; a look or a style can be made meanwhile."],
  ["InternalError", "The server failed on this task: submit it again."],
];

function statusText(t) {
  if (t.gone) return "Not found";
  if (t.status === "QUEUED" && t.restarted) return "Queued again: its worker stopped, so the edit starts over";
  if (t.status === "QUEUED") return "Queued: waiting for a worker";
  if (t.status === "IN_PROGRESS" && t.restarted) return "Editing, started over after its worker stopped";
  if (t.status === "IN_PROGRESS") return "Editing";
  if (t.status === "SUCCESS") return "Done";
  if (t.inner === "CANCELED") return "Cancelled";
  if (t.status === "FAILURE") return "Failed";
  return t.status;
}

function badgeClass(t) {
  if (t.gone || t.inner === "CANCELED") return "muted";
  if (t.status === "SUCCESS") return "ok";
  if (t.status === "FAILURE") return "bad";
  return "busy";
}

function render(t) {
  const card = cards.get(t.id);
  if (!card) return;
  const el = card.el;
  el.dataset.status = t.gone ? "GONE" : t.status;
  el.dataset.inner = t.inner || "";
  const badge = el.querySelector(".badge");
  badge.className = `badge ${badgeClass(t)}`;
  badge.textContent = t.gone ? "GONE" : t.inner === "CANCELED" ? "CANCELED" : t.status;
  const st = el.querySelector(".task-status");
  const words = statusText(t);
  if (st.textContent !== words) st.textContent = words;
  // The percentage is shown, not announced (the status above is, once per change).
  el.querySelector(".task-percent").textContent = t.status === "IN_PROGRESS" ? `${t.progress} %` : "";
  const bar = el.querySelector(".task-progress");
  bar.value = t.progress || 0;
  bar.hidden = isFinal(t);

  let problem = null;
  if (t.gone) {
    problem = {
      text: "The server no longer knows this task.",
      hint: "Tasks are deleted after 24 h, and a task shows only with the key that created it.",
    };
  } else if (t.status === "FAILURE" && t.inner !== "CANCELED") {
    const found = FAILURE_HINTS.find(([code]) => (t.code || "").startsWith(code));
    problem = {
      text: `${t.fail || "The edit failed."}${t.code ? ` (${t.code})` : ""}`,
      hint: found ? found[1] : "",
    };
  } else if (card.problem) {
    problem = card.problem;
  }
  showError(el.querySelector(".task-error"), problem);

  const players = el.querySelector(".players");
  if (t.status === "SUCCESS" && t.result) {
    const source = el.querySelector("video.source");
    const result = el.querySelector("video.result");
    if (source.getAttribute("src") !== t.source) source.src = t.source;
    if (result.getAttribute("src") !== t.result) result.src = t.result;
    const link = el.querySelector(".download");
    link.href = t.result;
    link.hidden = false;
    players.hidden = false;
  } else {
    players.hidden = true;
  }
  const notice = el.querySelector(".plan-notice");
  const shown = t.plan && typeof t.plan === "object" && (t.status === "SUCCESS" || !isFinal(t));
  const noticeText = shown ? planNotice(t.plan, t.status === "SUCCESS") : "";
  if (notice.textContent !== noticeText) notice.textContent = noticeText;
  notice.hidden = !noticeText;
  const planBox = el.querySelector(".plan");
  if (shown) {
    const done = t.status === "SUCCESS";
    planBox.querySelector("h3").textContent = done ? "What was done" : "What will be done";
    const list = planBox.querySelector(".plan-words");
    const lines = planWords(t.plan, done);
    if (list.dataset.text !== lines.join("\n")) {
      list.dataset.text = lines.join("\n");
      list.replaceChildren(...lines.map((line) => {
        const li = document.createElement("li");
        li.textContent = line;
        return li;
      }));
    }
    planBox.hidden = false;
  } else {
    planBox.hidden = true;
  }
  el.querySelector(".cancel").hidden = isFinal(t);
}

/** Fold a query (or cancel) answer into the task: the answer to the request sent ``seq``-th
 *  for it. An answer older than one already shown (requests cross on a slow network), or
 *  one that would take an ended task back, changes nothing. Progress that goes back on a
 *  running task is a restart (its worker stopped and the task was handed on): said so. */
function absorb(t, data, seq) {
  const card = cards.get(t.id);
  if (card) {
    if (seq < card.shown) return false;
    card.shown = seq;
  }
  const ended = data.status === "SUCCESS" || data.status === "FAILURE";
  if (isFinal(t) && !ended) return false;
  const progress = parseInt(data.progress, 10) || 0;
  const wasEditing = t.status === "IN_PROGRESS";
  if (!ended && wasEditing && (data.status === "QUEUED" || progress < (t.progress || 0))) {
    t.restarted = true;
  }
  t.status = data.status;
  t.progress = progress;
  const inner = (data.data && data.data.output) || {};
  t.inner = inner.task_status || "";
  t.result = data.result_url || inner.video_url || "";
  t.fail = data.fail_reason || inner.message || "";
  t.code = inner.code || "";
  if (inner.edit_plan) t.plan = inner.edit_plan;
  return true;
}

function addCard(t, atTop) {
  const el = $("task-template").content.firstElementChild.cloneNode(true);
  el.dataset.id = t.id;
  const promptId = `prompt-${t.id}`;
  const p = el.querySelector(".task-prompt");
  p.id = promptId;
  p.textContent = t.prompt;
  el.querySelector(".task-when").textContent = new Date(t.created).toLocaleString();
  el.querySelector(".task-settings").textContent = t.resolution || "";
  el.querySelector(".task-id").textContent = t.id;
  el.querySelector(".task-progress").setAttribute("aria-labelledby", promptId);
  const cancel = el.querySelector(".cancel");
  const remove = el.querySelector(".remove");
  cancel.setAttribute("aria-describedby", promptId);
  remove.setAttribute("aria-describedby", promptId);
  cancel.addEventListener("click", () => cancelTask(t));
  remove.addEventListener("click", () => removeTask(t));
  const list = $("tasks");
  if (atTop) list.prepend(el);
  else list.append(el);
  cards.set(t.id, { el, timer: null, delay: POLL_FIRST_MS, paused: false, problem: null, sent: 0, shown: 0 });
  $("no-tasks").hidden = true;
  render(t);
  if (!isFinal(t)) schedule(t, 0);
}

function addTask(t) {
  tasks.unshift(t);
  for (const old of tasks.splice(MAX_TASKS)) dropCard(old.id);
  saveTasks();
  addCard(t, true);
}

function dropCard(id) {
  const card = cards.get(id);
  if (!card) return;
  clearTimeout(card.timer);
  card.el.remove();
  cards.delete(id);
}

function removeTask(t) {
  const card = cards.get(t.id);
  const next = card && (card.el.nextElementSibling || card.el.previousElementSibling);
  dropCard(t.id);
  tasks = tasks.filter((x) => x.id !== t.id);
  saveTasks();
  $("no-tasks").hidden = tasks.length > 0;
  const focus = next ? next.querySelector(".remove") : $("tasks-h");
  focus.focus();
}

async function cancelTask(t) {
  const card = cards.get(t.id);
  if (!card) return;
  const button = card.el.querySelector(".cancel");
  button.disabled = true;
  const seq = ++card.sent;
  const res = await api("POST", `/v1/video/generations/${encodeURIComponent(t.id)}/cancel`);
  button.disabled = false;
  if (!cards.has(t.id)) return;
  if (res.status === 200 && res.data && res.data.data) {
    card.problem = null;
    absorb(t, res.data.data, seq);
  } else if (res.status === 404) {
    t.gone = true;
  } else {
    card.problem = explain(res, "cancel the task", "cancel");
    schedule(t, 0); // an ended task says so at its next query
  }
  saveTasks();
  render(t);
}

function schedule(t, delay) {
  const card = cards.get(t.id);
  if (!card) return;
  clearTimeout(card.timer);
  card.timer = setTimeout(() => poll(t), delay);
}

/** Query the task; again later with backoff until it ends. */
async function poll(t) {
  const card = cards.get(t.id);
  if (!card || isFinal(t)) return;
  if (!currentKey()) {
    card.paused = true;
    card.problem = { text: "Paste the key to follow this task.", hint: "" };
    render(t);
    return;
  }
  const seq = ++card.sent;
  const res = await api("GET", `/v1/video/generations/${encodeURIComponent(t.id)}`);
  if (!cards.has(t.id)) return;
  let delay;
  if (res.status === 200 && res.data && res.data.data) {
    const before = `${t.status}/${t.progress}`;
    absorb(t, res.data.data, seq);
    card.problem = null;
    card.delay = before === `${t.status}/${t.progress}` ? Math.min(card.delay * 1.5, POLL_MAX_MS) : POLL_FIRST_MS;
    delay = card.delay;
  } else if (res.status === 404) {
    t.gone = true;
  } else if (res.status === 401) {
    card.paused = true; // until the key changes
    card.problem = explain(res, "follow the task", "query");
  } else {
    card.problem = explain(res, "follow the task (trying again)", "query");
    const after = Number(res.retryAfter) * 1000;
    card.delay = Math.min(card.delay * 2, POLL_OFFLINE_MAX_MS);
    delay = Math.max(card.delay, Number.isFinite(after) ? after : 0);
  }
  saveTasks();
  render(t);
  if (delay !== undefined && !card.paused && !isFinal(t)) schedule(t, delay);
}

function resumePolling() {
  for (const t of tasks) {
    const card = cards.get(t.id);
    if (card && card.paused && !isFinal(t)) {
      card.paused = false;
      card.delay = POLL_FIRST_MS;
      schedule(t, 300);
    }
  }
}

// --- start ---------------------------------------------------------------------------------------

function start() {
  // A file dropped beside a drop zone must not replace the page.
  window.addEventListener("dragover", (e) => e.preventDefault());
  window.addEventListener("drop", (e) => e.preventDefault());
  setupKey();
  setupForm(mediaBox("video"), mediaBox("image"));
  const kept = readStore(TASKS_STORE, []);
  tasks = Array.isArray(kept) ? kept.filter((t) => t && typeof t.id === "string") : [];
  for (const t of tasks) addCard(t, false);
  $("no-tasks").hidden = tasks.length > 0;
}

start();
