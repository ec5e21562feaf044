// A zip archive writer (stored entries, no compression: PNG data is already deflated).
// Names are UTF-8 (general-purpose flag bit 11); archives past the 4 GiB / 65,535-entry limits
// of plain zip are refused rather than written wrong.

import { crc32 } from "./png.js";

const LIMIT = 0xffffffff;
const UTF8 = 0x0800;

function dosDateTime(date) {
  const time = (date.getHours() << 11) | (date.getMinutes() << 5) | (date.getSeconds() >> 1);
  const day = ((Math.max(1980, date.getFullYear()) - 1980) << 9) | ((date.getMonth() + 1) << 5)
    | date.getDate();
  return { time, day };
}

/** files: [{name, bytes: Uint8Array}] -> a Blob holding the zip archive. */
export function makeZip(files, date = new Date()) {
  if (files.length > 0xffff) throw new Error(`${files.length} files: more than a zip can list`);
  const encoder = new TextEncoder();
  const { time, day } = dosDateTime(date);
  const parts = [];
  const directory = [];
  let offset = 0;
  for (const file of files) {
    const name = encoder.encode(file.name);
    const crc = crc32(file.bytes);
    const size = file.bytes.length;
    if (size >= LIMIT || offset >= LIMIT) throw new Error("archive over 4 GiB: download fewer images at once");
    const local = new Uint8Array(30 + name.length);
    const lv = new DataView(local.buffer);
    lv.setUint32(0, 0x04034b50, true);
    lv.setUint16(4, 20, true); // version needed: 2.0
    lv.setUint16(6, UTF8, true);
    lv.setUint16(8, 0, true); // stored
    lv.setUint16(10, time, true);
    lv.setUint16(12, day, true);
    lv.setUint32(14, crc, true);
    lv.setUint32(18, size, true);
    lv.setUint32(22, size, true);
    lv.setUint16(26, name.length, true);
    local.set(name, 30);

    const central = new Uint8Array(46 + name.length);
    const cv = new DataView(central.buffer);
    cv.setUint32(0, 0x02014b50, true);
    cv.setUint16(4, 20, true); // made by: 2.0
    cv.setUint16(6, 20, true);
    cv.setUint16(8, UTF8, true);
    cv.setUint16(10, 0, true);
    cv.setUint16(12, time, true);
    cv.setUint16(14, day, true);
    cv.setUint32(16, crc, true);
    cv.setUint32(20, size, true);
    cv.setUint32(24, size, true);
    cv.setUint16(28, name.length, true);
    cv.setUint32(42, offset, true);
    central.set(name, 46);

    parts.push(local, file.bytes);
    directory.push(central);
    offset += local.length + size;
  }
  const directorySize = directory.reduce((total, entry) => total + entry.length, 0);
  if (offset + directorySize >= LIMIT) throw new Error("archive over 4 GiB: download fewer images at once");
  const end = new Uint8Array(22);
  const ev = new DataView(end.buffer);
  ev.setUint32(0, 0x06054b50, true);
  ev.setUint16(8, files.length, true);
  ev.setUint16(10, files.length, true);
  ev.setUint32(12, directorySize, true);
  ev.setUint32(16, offset, true);
  return new Blob([...parts, ...directory, end], { type: "application/zip" });
}
