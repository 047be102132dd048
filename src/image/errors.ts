// Typed errors of the image layer. Every failure to read or write an image ends up as an
// ImageError that names the file and says what is wrong, so that a bad or foreign image
// directory produces one clear line instead of a stack trace from deep inside protobuf.

export type ImageErrorCode =
  | "EMPTY" // zero-length file
  | "BAD_MAGIC" // magic missing, unknown, or not the one the file name calls for
  | "TRUNCATED" // an entry's size or payload runs past the end of the file
  | "GARBAGE" // bytes that do not parse as the entry message
  | "MISSING_FIELD" // a proto2 required field is not set
  | "WRONG_MESSAGE" // an entry of another message type than the image kind holds
  | "PAYLOAD" // raw payload missing, or not the size the entry declares
  | "RAW_IMAGE" // a raw image (pages-N.img, ...) asked for as entries
  | "UNKNOWN_KIND" // no image kind of that name or file name
  | "NO_INVENTORY" // directory without inventory.img
  | "VERSION" // inventory of an image format version cryo does not read
  | "MISSING_FILE" // an image the caller asked for does not exist
  | "DIR" // the image directory cannot be used (exists and not empty, not a dir, ...)
  | "STATE" // the writer was used out of order (write after finish, ...)
  | "IO"; // an I/O error from the file system

export class ImageError extends Error {
  override readonly name = "ImageError";
  constructor(
    readonly code: ImageErrorCode,
    /** File (or directory) the error is about, as given by the caller; undefined if unknown. */
    readonly file: string | undefined,
    readonly detail: string,
    /** Byte offset in the file where the problem was found, when it is about a position. */
    readonly offset?: number,
    options?: { cause?: unknown },
  ) {
    super(`${file ?? "<image>"}: ${detail}`, options);
  }
}

export function isImageError(e: unknown, code?: ImageErrorCode): e is ImageError {
  return e instanceof ImageError && (code === undefined || e.code === code);
}
