// BTF type model: one TypeScript interface per BTF kind (Documentation/bpf/btf.rst),
// joined in the discriminated union `BtfType` on the `kind` field.

/** Kind numbers as encoded in bits 24..28 of `btf_type.info`. */
export const BTF_KIND = {
  VOID: 0,
  INT: 1,
  PTR: 2,
  ARRAY: 3,
  STRUCT: 4,
  UNION: 5,
  ENUM: 6,
  FWD: 7,
  TYPEDEF: 8,
  VOLATILE: 9,
  CONST: 10,
  RESTRICT: 11,
  FUNC: 12,
  FUNC_PROTO: 13,
  VAR: 14,
  DATASEC: 15,
  FLOAT: 16,
  DECL_TAG: 17,
  TYPE_TAG: 18,
  ENUM64: 19,
} as const;

export type BtfKind = keyof typeof BTF_KIND;

/** Kind names indexed by kind number. */
export const BTF_KIND_NAMES: readonly BtfKind[] = Object.keys(BTF_KIND) as BtfKind[];

interface Named {
  /** Type id inside its Btf (0 for void). */
  readonly id: number;
  /** Name from the string section; '' when anonymous. */
  readonly name: string;
}

export interface BtfVoid extends Named {
  readonly kind: 'VOID';
}

export interface BtfInt extends Named {
  readonly kind: 'INT';
  /** Storage size in bytes. */
  readonly size: number;
  readonly signed: boolean;
  /** BTF_INT_CHAR: only a pretty-printing hint; compilers rarely set it. */
  readonly char: boolean;
  readonly bool: boolean;
  /** Bit offset of the value inside its storage (legacy bitfield encoding). */
  readonly bitOffset: number;
  /** Number of value bits (≤ size * 8). */
  readonly bits: number;
}

export interface BtfPtr extends Named {
  readonly kind: 'PTR';
  readonly type: number;
}

export interface BtfArray extends Named {
  readonly kind: 'ARRAY';
  /** Element type id. */
  readonly type: number;
  readonly indexType: number;
  readonly nelems: number;
}

export interface BtfMember {
  /** '' for an anonymous struct/union member or padding bitfield. */
  readonly name: string;
  readonly type: number;
  /** Offset from the start of the struct, in bits. */
  readonly bitOffset: number;
  /** Bitfield width; 0 when the member is not a bitfield (kind_flag encoding only). */
  readonly bitSize: number;
}

interface Composite extends Named {
  readonly size: number;
  /** True when member offsets carry bitfield sizes (kind_flag = 1). */
  readonly kindFlag: boolean;
  readonly members: readonly BtfMember[];
}

export interface BtfStruct extends Composite {
  readonly kind: 'STRUCT';
}

export interface BtfUnion extends Composite {
  readonly kind: 'UNION';
}

export interface BtfEnumValue {
  readonly name: string;
  readonly value: number;
}

export interface BtfEnum extends Named {
  readonly kind: 'ENUM';
  readonly size: number;
  /** kind_flag: values are signed. Older compilers (clang < 15) never set it. */
  readonly signed: boolean;
  readonly values: readonly BtfEnumValue[];
}

export interface BtfEnum64Value {
  readonly name: string;
  readonly value: bigint;
}

export interface BtfEnum64 extends Named {
  readonly kind: 'ENUM64';
  readonly size: number;
  readonly signed: boolean;
  readonly values: readonly BtfEnum64Value[];
}

export interface BtfFwd extends Named {
  readonly kind: 'FWD';
  readonly fwdKind: 'struct' | 'union';
}

/** Types that only add a name or a qualifier to another type. */
export interface BtfTypedef extends Named {
  readonly kind: 'TYPEDEF';
  readonly type: number;
}

export interface BtfVolatile extends Named {
  readonly kind: 'VOLATILE';
  readonly type: number;
}

export interface BtfConst extends Named {
  readonly kind: 'CONST';
  readonly type: number;
}

export interface BtfRestrict extends Named {
  readonly kind: 'RESTRICT';
  readonly type: number;
}

export interface BtfTypeTag extends Named {
  readonly kind: 'TYPE_TAG';
  readonly type: number;
  /** kind_flag: the tag is a full `__attribute__((...))` rather than btf_type_tag. */
  readonly attr: boolean;
}

export type BtfLinkage = 'static' | 'global' | 'extern';

export interface BtfFunc extends Named {
  readonly kind: 'FUNC';
  /** FUNC_PROTO id. */
  readonly type: number;
  readonly linkage: BtfLinkage;
}

export interface BtfParam {
  readonly name: string;
  /** 0 with name '' for the trailing `...` of a variadic function. */
  readonly type: number;
}

export interface BtfFuncProto extends Named {
  readonly kind: 'FUNC_PROTO';
  readonly returnType: number;
  readonly params: readonly BtfParam[];
}

export interface BtfVar extends Named {
  readonly kind: 'VAR';
  readonly type: number;
  readonly linkage: BtfLinkage;
}

export interface BtfVarSecinfo {
  /** VAR (or FUNC, for extern ksyms) id. */
  readonly type: number;
  readonly offset: number;
  readonly size: number;
}

export interface BtfDatasec extends Named {
  readonly kind: 'DATASEC';
  readonly size: number;
  readonly vars: readonly BtfVarSecinfo[];
}

export interface BtfFloat extends Named {
  readonly kind: 'FLOAT';
  readonly size: number;
}

export interface BtfDeclTag extends Named {
  readonly kind: 'DECL_TAG';
  /** Tagged type (struct, union, var, func, typedef). */
  readonly type: number;
  /** -1 for the type itself, else the member / parameter index. */
  readonly componentIdx: number;
  readonly attr: boolean;
}

export type BtfType =
  | BtfVoid
  | BtfInt
  | BtfPtr
  | BtfArray
  | BtfStruct
  | BtfUnion
  | BtfEnum
  | BtfFwd
  | BtfTypedef
  | BtfVolatile
  | BtfConst
  | BtfRestrict
  | BtfFunc
  | BtfFuncProto
  | BtfVar
  | BtfDatasec
  | BtfFloat
  | BtfDeclTag
  | BtfTypeTag
  | BtfEnum64;

/** The BtfType variant of a given kind: `BtfTypeOf<'STRUCT'>` is `BtfStruct`. */
export type BtfTypeOf<K extends BtfKind> = Extract<BtfType, { kind: K }>;

/** Kinds that `Btf.resolve` looks through. */
export const MODIFIER_KINDS: ReadonlySet<BtfKind> = new Set<BtfKind>([
  'TYPEDEF',
  'CONST',
  'VOLATILE',
  'RESTRICT',
  'TYPE_TAG',
]);

/** A global variable of a data section, as `Btf.datasec` reports it. */
export interface DatasecVar {
  readonly name: string;
  /** The variable's value type (the VAR's target, not the VAR itself). */
  readonly typeId: number;
  /** The VAR type id. */
  readonly varId: number;
  readonly offset: number;
  readonly size: number;
}

export interface Datasec {
  readonly id: number;
  readonly name: string;
  readonly size: number;
  readonly vars: readonly DatasecVar[];
}
