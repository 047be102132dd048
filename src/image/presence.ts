// Whether an optional field of a record is present. A decoded proto2 message answers from the
// wire (an unset optional field reads as its default, 0 or false, never undefined); a record
// built in this process (a plain init object, not yet encoded) answers by having the property.
import { isFieldSet, type DescMessage } from "@bufbuild/protobuf";

export function hasField(schema: DescMessage, record: object, localName: string): boolean {
  const field = schema.fields.find((f) => f.localName === localName);
  if (!field) throw new Error(`${schema.typeName} has no field ${localName}`);
  if ("$typeName" in record) return isFieldSet(record as Parameters<typeof isFieldSet>[0], field);
  return (record as Record<string, unknown>)[localName] !== undefined;
}
