// Read the rnnx state contract ("rnnx.spec") from an ONNX file, with no dependencies.
//
// onnxruntime-node and onnxruntime-web do not expose an ONNX model's custom metadata, so this
// walks the ModelProto protobuf just far enough to find its metadata_props (field 14: key = 1,
// value = 2) and skips everything else (the graph is never decoded). The Python runtime reads
// the file the same way before it creates a session (rnnx/runtime/precision.py).
'use strict';

const METADATA_KEY = 'rnnx.spec';
const METADATA_PROPS = 14; // ModelProto.metadata_props

function readVarint(buf, pos) {
  let value = 0;
  let scale = 1;
  for (let i = 0; i < 10; i += 1) {
    if (pos >= buf.length) throw new Error('rnnx.spec: truncated protobuf varint');
    const byte = buf[pos];
    pos += 1;
    value += (byte & 0x7f) * scale; // arithmetic, not bit ops: lengths may exceed 2^31
    scale *= 128;
    if ((byte & 0x80) === 0) return [value, pos];
  }
  throw new Error('rnnx.spec: malformed protobuf varint');
}

// Yields [fieldNumber, start, end] for every length-delimited field of one message.
function* lengthDelimited(buf, start, end) {
  let pos = start;
  while (pos < end) {
    let key;
    [key, pos] = readVarint(buf, pos);
    const wire = key % 8;
    const field = Math.floor(key / 8);
    if (wire === 0) {
      [, pos] = readVarint(buf, pos);
    } else if (wire === 1) {
      pos += 8;
    } else if (wire === 5) {
      pos += 4;
    } else if (wire === 2) {
      let size;
      [size, pos] = readVarint(buf, pos);
      if (pos + size > end) throw new Error('rnnx.spec: truncated protobuf field');
      yield [field, pos, pos + size];
      pos += size;
    } else {
      throw new Error(`rnnx.spec: unsupported protobuf wire type ${wire}`);
    }
  }
}

/** The metadata_props of an ONNX model as {key: value}. `bytes`: a Uint8Array or Buffer. */
function readMetadataProps(bytes) {
  const buf = bytes instanceof Uint8Array ? bytes : new Uint8Array(bytes);
  const decoder = new TextDecoder('utf-8');
  const props = {};
  for (const [field, start, end] of lengthDelimited(buf, 0, buf.length)) {
    if (field !== METADATA_PROPS) continue;
    const entry = {};
    for (const [f, s, e] of lengthDelimited(buf, start, end)) entry[f] = decoder.decode(buf.subarray(s, e));
    props[entry[1] || ''] = entry[2] || '';
  }
  return props;
}

/** The parsed rnnx.spec contract of an ONNX file exported by rnnx; throws when it has none. */
function readSpec(bytes) {
  const text = readMetadataProps(bytes)[METADATA_KEY];
  if (text === undefined) throw new Error(`no '${METADATA_KEY}' metadata: not exported by rnnx`);
  const spec = JSON.parse(text);
  if (spec.format !== 1) throw new Error(`${METADATA_KEY}.format: expected 1, got ${spec.format}`);
  spec.precision = spec.precision || 'fp32';
  return spec;
}

/**
 * onnxruntime session options the file's precision needs (rnnx/runtime/precision.py does the
 * same): fp16 graphs crash onnxruntime's NchwcTransformer above the "extended" optimisation
 * level; int8 files keep some weights as int8 + DequantizeLinear, folded once at load with
 * session.disable_quant_qdq (else dequantized on every step).
 */
function sessionOptionsFor(spec) {
  if (spec.precision === 'fp16') return { graphOptimizationLevel: 'extended' };
  if (spec.precision === 'int8') return { extra: { session: { disable_quant_qdq: '1' } } };
  return {};
}

module.exports = { METADATA_KEY, readMetadataProps, readSpec, sessionOptionsFor };
