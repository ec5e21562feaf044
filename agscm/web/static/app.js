// The page: load the generator, take images, perturb them in this tab, offer the PNGs.
// Everything runs locally; the only requests are to this site's own files, made at load time.

import { readMetadataProps } from "./onnx-metadata.js";
import {
  amplifiedPerturbation, distortion, linfBudget, modelPixels, paddedLength, quantize, toModelInput,
  toRgba,
} from "./pixels.js";
import { encodePng } from "./png.js";
import { makeZip } from "./zip.js";

const site = JSON.parse(document.getElementById("agscm-site").textContent);
const $ = (selector, root = document) => root.querySelector(selector);
const state = { ort: null, session: null, meta: null, backend: null, results: [], names: new Set() };
let queue = Promise.resolve(); // images run one after another, after the model has loaded

// ---- the model ----------------------------------------------------------------------------

/** metadata_props -> typed metadata, checked against the contract `agscm export` writes. */
function parseMetadata(props) {
  const missing = site.contract.required_keys.filter((key) => !(key in props));
  if (missing.length) throw new Error(`not an agscm generator: missing metadata ${missing.join(", ")}`);
  const meta = {
    agscmVersion: props.agscm_version,
    channels: Number(props.channels),
    eps: Number(props.eps),
    norm: props.norm,
    trainSize: JSON.parse(props.train_size),
    sizeMultiple: Number(props.size_multiple),
    dataset: props.dataset,
    sources: JSON.parse(props.source_models),
    lambda: Number(props.lambda),
    config: JSON.parse(props.config),
    precision: props.precision ?? "fp32",
  };
  if (!(String(meta.channels) in site.contract.channels)) {
    throw new Error(`${meta.channels}-channel generators are not supported`);
  }
  if (!(meta.sizeMultiple >= 1) || !(meta.eps > 0)) throw new Error("malformed agscm metadata");
  return meta;
}

/** The WebGPU adapter's name, or why there is none. */
async function probeWebGpu() {
  if (!("gpu" in navigator)) return { reason: "this browser has no WebGPU" };
  try {
    const adapter = await navigator.gpu.requestAdapter();
    if (!adapter) return { reason: "no WebGPU adapter (no usable GPU, or GPU access is off)" };
    const info = adapter.info ?? {};
    const name = [info.vendor, info.architecture, info.description].filter(Boolean).join(" ");
    return { adapter: name || "unnamed adapter" };
  } catch (error) {
    return { reason: `WebGPU adapter request failed (${error.message})` };
  }
}

/** WebGPU where it works, else WASM; `?backend=wasm|webgpu` forces one. Says why. */
async function createSession(ort, bytes, requested) {
  const probe = requested === "wasm" ? { reason: "WASM requested (?backend=wasm)" } : await probeWebGpu();
  let reason = probe.reason;
  if (!reason) {
    try {
      const session = await ort.InferenceSession.create(bytes, { executionProviders: ["webgpu"] });
      return { session, backend: "webgpu", adapter: probe.adapter, reason: null };
    } catch (error) {
      reason = `WebGPU could not run the model (${error.message})`;
    }
  }
  if (requested === "webgpu") throw new Error(`WebGPU requested, but ${reason}`);
  const session = await ort.InferenceSession.create(bytes, { executionProviders: ["wasm"] });
  return { session, backend: "wasm", reason };
}

function showMetadata(meta) {
  const eps = meta.norm === "linf"
    ? `${meta.eps.toPrecision(4)} L-inf (${+(meta.eps * 255).toFixed(2)}/255; ${linfBudget(meta.eps)} steps of 8 bits)`
    : `${meta.eps.toPrecision(4)} L2`;
  const rows = [
    ["model", `${site.model.name} (${(site.model.bytes / 1e6).toFixed(2)} MB)`],
    ["eps", eps],
    ["channels", `${meta.channels} (${meta.channels === 1 ? "grey" : "RGB"})`],
    ["dataset", meta.dataset],
    ["sources", meta.sources.length ? meta.sources.join(", ") : "none recorded"],
    ["lambda", String(meta.lambda)],
    ["trained at", `${meta.trainSize[0]}×${meta.trainSize[1]}`],
    ["size multiple", String(meta.sizeMultiple)],
    ["precision", meta.precision],
    ["exported by", `agscm ${meta.agscmVersion}`],
  ];
  const list = $("#metadata");
  for (const [key, value] of rows) {
    const term = document.createElement("dt");
    term.textContent = key;
    const detail = document.createElement("dd");
    detail.textContent = value;
    detail.dataset.key = key;
    list.append(term, detail);
  }
  $("#config").textContent = JSON.stringify(meta.config, null, 1);
  $("#config-details").hidden = false;
}

function setStatus(text, stateName) {
  const status = $("#status");
  status.textContent = text;
  status.dataset.state = stateName;
}

async function load() {
  $("#agscm-version").textContent = site.agscm_version;
  $("#ort-version").textContent = site.ort.version;
  try {
    const [ort, response] = await Promise.all([import(site.ort.module), fetch(site.model.file)]);
    if (!response.ok) throw new Error(`${site.model.file}: HTTP ${response.status}`);
    const bytes = new Uint8Array(await response.arrayBuffer());
    const meta = parseMetadata(readMetadataProps(bytes));
    ort.env.logLevel = "error";
    ort.env.wasm.wasmPaths = new URL("ort/", document.baseURI).href;
    // Threads need SharedArrayBuffer, which only a cross-origin-isolated page has.
    ort.env.wasm.numThreads = self.crossOriginIsolated ? Math.min(4, navigator.hardwareConcurrency || 1) : 1;
    const requested = new URLSearchParams(location.search).get("backend") || "auto";
    const { session, backend, adapter, reason } = await createSession(ort, bytes, requested);
    const names = { inputs: session.inputNames, outputs: session.outputNames };
    if (names.inputs.length !== 1 || names.inputs[0] !== site.contract.input
        || !names.outputs.includes(site.contract.output)) {
      throw new Error(`not an agscm generator (inputs ${names.inputs}, outputs ${names.outputs})`);
    }
    Object.assign(state, { ort, session, meta, backend });
    showMetadata(meta);
    const where = backend === "webgpu" ? `WebGPU (adapter: ${adapter})`
      : `WASM (on the CPU, ${ort.env.wasm.numThreads} thread${ort.env.wasm.numThreads === 1 ? "" : "s"})`;
    setStatus(`Ready: running on ${where}${reason ? `. WebGPU not used: ${reason}.` : "."}`, "ready");
    $("#status").dataset.backend = backend;
    $("#file-input").disabled = false;
  } catch (error) {
    setStatus(`The model could not be loaded: ${error.message}`, "error");
  }
}

// ---- images -------------------------------------------------------------------------------

/** A name for the download that no earlier image in this batch has taken. */
function outputName(inputName) {
  const stem = inputName.replace(/\.[^./]*$/, "") || "image";
  let name = `${stem}-adv.png`;
  for (let n = 2; state.names.has(name.toLowerCase()); n++) name = `${stem}-adv-${n}.png`;
  state.names.add(name.toLowerCase());
  return name;
}

async function decode(file) {
  let bitmap;
  try {
    bitmap = await createImageBitmap(file, {
      imageOrientation: "from-image", premultiplyAlpha: "none", colorSpaceConversion: "none",
    });
  } catch {
    throw new Error("not an image this browser can decode");
  }
  const { width, height } = bitmap;
  if (width * height > site.max_pixels) {
    bitmap.close();
    throw new Error(`${width}×${height} is over this page's limit of ${site.max_pixels.toLocaleString("en")} pixels; `
      + "use agscm perturb for larger images");
  }
  const context = new OffscreenCanvas(width, height).getContext("2d", { willReadFrequently: true });
  context.drawImage(bitmap, 0, 0);
  bitmap.close();
  return { width, height, rgba: context.getImageData(0, 0, width, height).data };
}

function notesFor(clean, width, height) {
  const { channels, sizeMultiple } = state.meta;
  const notes = [];
  if (channels === 1) {
    notes.push(clean.grey ? "grey, as the model takes it"
      : "colour converted to grey (luma, as Pillow's convert(\"L\")): the model takes 1 channel");
  } else {
    notes.push(clean.grey ? "grey: its one channel copied into R, G and B (the model takes RGB)"
      : "RGB, as the model takes it");
  }
  const paddedWidth = paddedLength(width, sizeMultiple);
  const paddedHeight = paddedLength(height, sizeMultiple);
  if (paddedWidth !== width || paddedHeight !== height) {
    notes.push(`reflect-padded ${width}×${height} → ${paddedWidth}×${paddedHeight} (a multiple of ${sizeMultiple}), cropped back`);
  }
  if (clean.alpha) {
    notes.push("transparency kept as it was, not perturbed (colours under translucent pixels "
      + "are read through the browser's premultiplied canvas, so they may differ from agscm perturb's by rounding)");
  }
  return notes;
}

function paint(canvas, values, width, height, channels, alpha = null) {
  canvas.width = width;
  canvas.height = height;
  canvas.getContext("2d").putImageData(new ImageData(toRgba(values, width, height, channels, alpha), width, height), 0, 0);
  canvas.classList.toggle("pixelated", Math.max(width, height) < 256);
}

function formatMetrics(metrics) {
  return {
    linf: `${metrics.linf.toFixed(4)} (${Math.round(metrics.linf * 255)}/255)`,
    l2: metrics.l2.toFixed(4),
    psnr: metrics.psnr === null ? "∞ (unchanged)" : `${metrics.psnr.toFixed(2)} dB`,
  };
}

async function perturb(file, card) {
  const started = performance.now();
  const { ort, session, meta } = state;
  if (!session) throw new Error("the model is not loaded (see the message at the top)");
  const { width, height, rgba } = await decode(file);
  const clean = modelPixels(rgba, width, height, meta.channels);
  $(".notes", card).textContent = `${width}×${height}; ${notesFor(clean, width, height).join("; ")}.`;
  const input = toModelInput(clean.values, width, height, meta.channels, meta.sizeMultiple);
  const tensor = new ort.Tensor("float32", input.data, input.dims);
  const outputs = await session.run({ [site.contract.input]: tensor }, [site.contract.output]);
  const output = outputs[site.contract.output];
  const budget = meta.norm === "linf" ? linfBudget(meta.eps) : null;
  const [, , paddedHeight, paddedWidth] = input.dims;
  const values = quantize(await output.getData(), paddedWidth, paddedHeight, width, height, meta.channels,
                          clean.values, budget);
  output.dispose();
  const metrics = distortion(clean.values, values);
  const png = await encodePng(values, width, height, meta.channels, clean.alpha);
  const shown = amplifiedPerturbation(clean.values, values, budget);
  paint($("canvas.clean", card), clean.values, width, height, meta.channels, clean.alpha);
  paint($("canvas.adversarial", card), values, width, height, meta.channels, clean.alpha);
  paint($("canvas.perturbation", card), shown.values, width, height, meta.channels);
  $(".gain", card).textContent = `perturbation ×${shown.gain.toFixed(1)} (grey = unchanged)`;
  const seconds = (performance.now() - started) / 1000;
  return { size: [width, height], metrics, png, seconds };
}

/** An error as one line a person can act on. */
function explain(error) {
  const message = error?.message || String(error);
  if (/bad_alloc|out of memory|Array buffer allocation failed/i.test(message)) {
    return "out of memory: the image is too large for this browser's runtime (WASM has at most "
      + "4 GiB); use agscm perturb for it";
  }
  return message;
}

function updateSummary() {
  const count = (status) => state.results.filter((result) => result.status === status).length;
  const [done, failed, pending] = [count("ok"), count("failed"), count("pending")];
  const summary = $("#summary");
  Object.assign(summary.dataset, { done, failed, pending });
  summary.textContent = `${done} done, ${failed} failed${pending ? `, ${pending} waiting` : ""}.`;
  $("#download-all").disabled = done === 0 || pending > 0;
  $("#clear").disabled = pending > 0 || state.results.length === 0;
}

function download(blob, name) {
  const link = document.createElement("a");
  link.href = URL.createObjectURL(blob);
  link.download = name;
  document.body.append(link);
  link.click();
  link.remove();
  setTimeout(() => URL.revokeObjectURL(link.href), 60_000);
}

function addFiles(files) {
  for (const file of files) {
    const card = $("#card-template").content.firstElementChild.cloneNode(true);
    const result = { input: file.name, output: null, status: "pending", card };
    $(".name", card).textContent = file.name;
    $("#results").append(card);
    state.results.push(result);
    queue = queue.then(async () => {
      try {
        const { size, metrics, png, seconds } = await perturb(file, card);
        Object.assign(result, { output: outputName(file.name), status: "ok", size, metrics, png });
        const shown = formatMetrics(metrics);
        for (const key of ["linf", "l2", "psnr"]) $(`.${key}`, card).textContent = shown[key];
        $(".time", card).textContent = `${(seconds * 1000).toFixed(0)} ms`;
        const button = $("button.download", card);
        button.textContent = `Download ${result.output}`;
        button.disabled = false;
        button.addEventListener("click", () => download(png, result.output));
      } catch (error) {
        Object.assign(result, { status: "failed", error: explain(error) });
        $(".notes", card).textContent = `Failed: ${result.error}`;
      }
      card.dataset.status = result.status;
      updateSummary();
    });
  }
  updateSummary();
}

/** One JSON line per image, with the keys of `agscm perturb`'s manifest (+ the backend). */
function manifest() {
  return state.results.filter((result) => result.status !== "pending").map((result) => JSON.stringify({
    input: result.input,
    output: result.output,
    status: result.status,
    size: result.size ?? null,
    linf: result.metrics?.linf ?? null,
    l2: result.metrics?.l2 ?? null,
    psnr: result.metrics?.psnr ?? null,
    error: result.error ?? null,
    backend: state.backend,
  })).join("\n") + "\n";
}

async function downloadAll() {
  const done = state.results.filter((result) => result.status === "ok");
  const files = await Promise.all(done.map(async (result) => ({
    name: result.output, bytes: new Uint8Array(await result.png.arrayBuffer()),
  })));
  files.push({ name: "manifest.jsonl", bytes: new TextEncoder().encode(manifest()) });
  download(makeZip(files), "agscm-adversarial.zip");
}

function clear() {
  state.results = [];
  state.names.clear();
  $("#results").replaceChildren();
  updateSummary();
}

// ---- wiring -------------------------------------------------------------------------------

function wire() {
  const zone = $("#drop-zone");
  const input = $("#file-input");
  input.addEventListener("change", () => {
    addFiles([...input.files]);
    input.value = "";
  });
  // A drop anywhere must not navigate away to the file; only the zone takes it.
  for (const type of ["dragover", "drop"]) window.addEventListener(type, (event) => event.preventDefault());
  zone.addEventListener("dragover", (event) => {
    event.preventDefault();
    zone.classList.add("over");
  });
  zone.addEventListener("dragleave", () => zone.classList.remove("over"));
  zone.addEventListener("drop", (event) => {
    event.preventDefault();
    zone.classList.remove("over");
    addFiles([...event.dataTransfer.files]);
  });
  zone.addEventListener("keydown", (event) => {
    if (event.key === "Enter" || event.key === " ") input.click();
  });
  $("#download-all").addEventListener("click", downloadAll);
  $("#clear").addEventListener("click", clear);
}

wire();
queue = load(); // images dropped while the model loads wait for it
