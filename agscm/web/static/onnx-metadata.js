// Read `metadata_props` (the agscm contract's metadata) straight from the ONNX file's bytes.
// onnxruntime-web does not expose custom metadata, so this walks the ModelProto protobuf:
// field 14 holds repeated StringStringEntryProto {1: key, 2: value}; everything else is skipped.

const METADATA_PROPS = 14;

function readVarint(bytes, position) {
  let value = 0;
  let scale = 1;
  for (;;) {
    if (position >= bytes.length) throw new Error("truncated varint");
    const byte = bytes[position++];
    value += (byte & 0x7f) * scale; // arithmetic, not bit shifts: lengths may pass 2^31
    if (byte < 0x80) return [value, position];
    scale *= 128;
    if (scale > 2 ** 63) throw new Error("varint too long");
  }
}

/** Yield [field number, wire type, value or bytes] for each field of one message. */
function* fields(bytes) {
  let position = 0;
  while (position < bytes.length) {
    let key;
    [key, position] = readVarint(bytes, position);
    const field = Math.floor(key / 8);
    const wire = key % 8;
    if (wire === 0) {
      let value;
      [value, position] = readVarint(bytes, position);
      yield [field, wire, value];
    } else if (wire === 1 || wire === 5) {
      position += wire === 1 ? 8 : 4;
    } else if (wire === 2) {
      let length;
      [length, position] = readVarint(bytes, position);
      if (position + length > bytes.length) throw new Error("truncated field");
      yield [field, wire, bytes.subarray(position, position + length)];
      position += length;
    } else {
      throw new Error(`unsupported protobuf wire type ${wire}`);
    }
    if (position > bytes.length) throw new Error("truncated field");
  }
}

/** ONNX model bytes -> {key: value} of its metadata_props (throws on a malformed file). */
export function readMetadataProps(bytes) {
  const decoder = new TextDecoder("utf-8", { fatal: true });
  const props = {};
  for (const [field, wire, value] of fields(bytes)) {
    if (field !== METADATA_PROPS || wire !== 2) continue;
    let key = "";
    let text = "";
    for (const [inner, innerWire, innerValue] of fields(value)) {
      if (innerWire !== 2) continue;
      if (inner === 1) key = decoder.decode(innerValue);
      if (inner === 2) text = decoder.decode(innerValue);
    }
    props[key] = text;
  }
  return props;
}
