// The image layer: CRIU-compatible image files and directories. Generated message types live in
// ./gen/*_pb.js (one module per .proto file in ./proto); import them from there.

export { ImageError, isImageError, type ImageErrorCode } from "./errors.js";
export {
  CRTOOLS_IMAGES_V1_1,
  IMG_COMMON_MAGIC,
  IMG_SERVICE_MAGIC,
  allKinds,
  hexMagic,
  imageFileName,
  kindByMagic,
  kindByName,
  kindForFileName,
  type ImageFraming,
  type ImageKind,
} from "./magic.js";
export {
  decodeImage,
  decodeImageAs,
  encodeImage,
  missingRequired,
  readImageHeader,
  type DecodedImage,
  type ImageEntry,
} from "./io.js";
export { parseIpcMsgPayload, type IpcMsgRecord, type PayloadSize } from "./payload.js";
export { ImageDirReader, ImageDirWriter, INVENTORY_FILE, type RawImageSink, type WriterOptions } from "./dir.js";
export { imageToJson, messageToJson, showImage, type JsonValue, type ShowOptions } from "./show.js";
export { PE_LAZY, PE_PARENT, PE_PRESENT, PE_AS_PARENT, PE_NOT_PARENT, makePagemapEntry, pagemapEntryFlags, pagemapEntryPages } from "./pagemap.js";
export {
  FP_XSTATE_MAGIC1,
  STANDARD_OFFSETS,
  XFEATURE,
  XsaveError,
  fpregsFromXsave,
  unrepresentableXfeatures,
  xsaveFeatures,
  xsaveFromFpregs,
  xstateBv,
  type UserX86FpregsEntry,
  type UserX86XsaveEntry,
  type XsaveLayout,
} from "./xsave.js";
export { bytesToString, stringToBytes } from "./text-encoding.js";
export { hasField } from "./presence.js";
