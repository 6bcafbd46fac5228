// Package safetensors reads and writes the Hugging Face safetensors format,
// both single files and sharded checkpoints (model-0000N-of-0000M.safetensors
// plus model.safetensors.index.json).
//
// File layout: an 8-byte little-endian header length N, N bytes of a JSON
// object {name: {"dtype", "shape", "data_offsets": [begin, end]},
// "__metadata__": {string: string}}, then the data buffer. Offsets are
// relative to the start of the buffer.
//
// Reading memory-maps every file read-only (Linux and Darwin; other systems
// fall back to positioned reads) and validates the header as strictly as the
// reference Rust implementation: every tensor must lie inside the buffer, its
// byte size must equal numel*dtype size, ranges may not overlap and the
// buffer must be covered without holes. Converting a tensor to float32
// releases the mapped pages it came from (madvise MADV_DONTNEED on Linux), so
// loading a model holds about one float32 copy of the weights, not two.
//
// Writing is deterministic and atomic: data goes to a temporary file in the
// destination directory, is fsynced and renamed into place; on any error the
// temporary file is removed and no partial output is left behind.
package safetensors
