// Stream a recorded sequence through an rnnx-exported ONNX model, one step per call, carrying
// the recurrent state from each call to the next (onnxruntime-node).
//
//   npm install onnxruntime-node            (once, in this folder or anywhere on NODE_PATH)
//   node stream.js model.onnx signal.npy    (signal: float32 (T, features...) .npy)
//
// Prints one JSON line per step: {"t": 0, "y": [...]}; the final state goes to stderr.
'use strict';

const fs = require('fs');
const ort = require('onnxruntime-node');
const { readSpec, sessionOptionsFor } = require('./rnnx_spec');

/** A float32, C-order .npy file as {shape, data: Float32Array}. */
function readNpy(path) {
  const buf = fs.readFileSync(path);
  if (buf.toString('latin1', 1, 6) !== 'NUMPY') throw new Error(`${path}: not a .npy file`);
  const major = buf[6];
  const headerLen = major === 1 ? buf.readUInt16LE(8) : buf.readUInt32LE(8);
  const offset = (major === 1 ? 10 : 12) + headerLen;
  const header = buf.toString('latin1', major === 1 ? 10 : 12, offset);
  if (!/'descr':\s*'<f4'/.test(header) || /'fortran_order':\s*True/.test(header)) {
    throw new Error(`${path}: expected a little-endian float32 C-order array, got ${header.trim()}`);
  }
  const shape = header.match(/'shape':\s*\(([^)]*)\)/)[1].split(',').filter((s) => s.trim()).map(Number);
  const data = new Float32Array(buf.buffer.slice(buf.byteOffset + offset, buf.byteOffset + buf.length));
  return { shape, data };
}

/** The graph shape of one step of batch 1: "batch" and "time" axes become 1. */
function stepShape(io) {
  return io.shape.map((d) => (typeof d === 'string' ? 1 : d));
}

function zeroState(spec) {
  return spec.state.map((s) => {
    const dims = s.shape.map((d) => (d === 'batch' ? 1 : d));
    const size = dims.reduce((a, b) => a * b, 1);
    return new ort.Tensor('float32', new Float32Array(size), dims);
  });
}

async function main() {
  const [modelPath, signalPath] = process.argv.slice(2);
  if (!modelPath || !signalPath) throw new Error('usage: node stream.js MODEL.onnx SIGNAL.npy');
  const bytes = fs.readFileSync(modelPath);
  const spec = readSpec(bytes);
  if (spec.input.dtype !== 'float32') throw new Error(`input dtype ${spec.input.dtype}: this example streams float32 inputs`);
  if (!spec.streamable) throw new Error('the model is not streamable (bidirectional)');
  const session = await ort.InferenceSession.create(bytes, sessionOptionsFor(spec));
  const signal = readNpy(signalPath);
  const dims = stepShape(spec.input);
  const perStep = dims.reduce((a, b) => a * b, 1);
  const steps = signal.shape[0];
  if (signal.data.length !== steps * perStep) {
    throw new Error(`${signalPath}: expected (T, ${dims.filter((_, i) => i !== spec.input.batch_axis && i !== spec.input.time_axis)}) values, got shape (${signal.shape})`);
  }
  let state = zeroState(spec);
  for (let t = 0; t < steps; t += 1) {
    const x = new ort.Tensor('float32', signal.data.slice(t * perStep, (t + 1) * perStep), dims);
    const feeds = { [spec.input.name]: x };
    spec.state.forEach((s, i) => { feeds[s.input] = state[i]; });
    const out = await session.run(feeds);
    state = spec.state.map((s) => out[s.output]); // carry the state into the next call
    process.stdout.write(`${JSON.stringify({ t, y: Array.from(out[spec.output.name].data) })}\n`);
  }
  const final = {};
  spec.state.forEach((s, i) => { final[s.name] = Array.from(state[i].data); });
  process.stderr.write(`${JSON.stringify({ state: final })}\n`);
}

main().catch((e) => { process.stderr.write(`Error: ${e.message}\n`); process.exit(2); });
