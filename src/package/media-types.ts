/**
 * Media types and annotation keys of the kbpf package format.
 * The format is specified in docs/package-format.md; change both together.
 */

/** OCI image manifest (image-spec v1.1); the package's top-level object. */
export const OCI_IMAGE_MANIFEST = 'application/vnd.oci.image.manifest.v1+json';
/** OCI image index; the top-level object of an OCI image layout's index.json. */
export const OCI_IMAGE_INDEX = 'application/vnd.oci.image.index.v1+json';
/** Docker schema 2 manifest and manifest list: recognised only to refuse them clearly. */
export const DOCKER_MANIFEST_V2 = 'application/vnd.docker.distribution.manifest.v2+json';
export const DOCKER_MANIFEST_LIST = 'application/vnd.docker.distribution.manifest.list.v2+json';

/** `artifactType` of every kbpf package manifest. */
export const KBPF_ARTIFACT_TYPE = 'application/vnd.kbpf.package.v1';
/** Config blob: the package manifest (kbpf.yaml resolved at build time) as JSON. */
export const KBPF_CONFIG = 'application/vnd.kbpf.package.config.v1+json';
/** Layer: one compiled BPF ELF object (with BTF). */
export const KBPF_BYTECODE = 'application/vnd.kbpf.bytecode.v1+elf';
/**
 * Layer: another build of one of the package's objects (the same source for another BPF
 * instruction set, `-mcpu=v3`), named by the config's `alternatives`. The agent loads it only
 * when the kernel's verifier refuses the object itself; readers that do not know it ignore it.
 */
export const KBPF_BYTECODE_ALTERNATIVE = 'application/vnd.kbpf.bytecode.alternative.v1+elf';
/** Layer: the package's source directory as a gzip-compressed tar. */
export const KBPF_SOURCE = 'application/vnd.kbpf.source.v1.tar+gzip';
/** Layer: an optional WebAssembly module for user-space event processing (reserved). */
export const KBPF_WASM = 'application/vnd.kbpf.wasm.v1+wasm';

/** Layer: the package's test cases (tests/*.yaml, checked and gathered at build) as JSON; see docs/testing.md. */
export const KBPF_TESTS = 'application/vnd.kbpf.tests.v1+json';

/** Pre-defined OCI annotation keys used by kbpf. */
export const ANNOTATION_TITLE = 'org.opencontainers.image.title';
export const ANNOTATION_VERSION = 'org.opencontainers.image.version';
export const ANNOTATION_CREATED = 'org.opencontainers.image.created';
export const ANNOTATION_DESCRIPTION = 'org.opencontainers.image.description';
export const ANNOTATION_REF_NAME = 'org.opencontainers.image.ref.name';

/** bpfman's image labels, written as optional annotations for interoperability. */
export const BPFMAN_PROGRAMS = 'io.ebpf.programs';
export const BPFMAN_MAPS = 'io.ebpf.maps';

/** Media types a kbpf layer may have; anything else is refused by putPackage. */
export const KBPF_LAYER_TYPES: readonly string[] = [
  KBPF_BYTECODE,
  KBPF_BYTECODE_ALTERNATIVE,
  KBPF_SOURCE,
  KBPF_WASM,
  KBPF_TESTS,
];
