// BLAKE3 compute kernels: chunk chaining values and parent merging.
//
// Every result is bit-identical to the `blake3` crate. The host (worker/src/hash/gpu.rs) drives them:
//
//   chunk_cvs         one invocation per 1024-byte chunk of a window of contiguous input
//   parent_cvs        one invocation per output node of a tree level: merges nodes 2i and 2i+1 of the
//                     level below, or carries an odd last node up unchanged (BLAKE3's tree shape)
//   batch_chunk_cvs   like chunk_cvs, but each invocation reads a job (offset, length, counter) so many
//                     small blobs can be hashed in one dispatch
//   batch_parent_cvs  like parent_cvs, driven by (left, right, destination, flags) jobs
//
// Input bytes are read as little-endian u32 words, four at a time. Bytes past the end of a chunk are
// masked off here, so the host never has to clear stale data left in a reused buffer.

const IV0: vec4<u32> = vec4<u32>(0x6A09E667u, 0xBB67AE85u, 0x3C6EF372u, 0xA54FF53Au);
const IV1: vec4<u32> = vec4<u32>(0x510E527Fu, 0x9B05688Cu, 0x1F83D9ABu, 0x5BE0CD19u);

const CHUNK_START: u32 = 1u;
const CHUNK_END: u32 = 2u;
const PARENT: u32 = 4u;
const ROOT: u32 = 8u;

const CHUNK_LEN: u32 = 1024u;
const BLOCK_LEN: u32 = 64u;

// One dispatch's parameters, bound with a dynamic offset so every level of a window can be encoded
// into one command buffer. Must match `DispatchParams` on the host.
struct Params {
    // Key words used as the initial chaining value: the IV, or the key in keyed mode.
    key_lo: vec4<u32>,
    key_hi: vec4<u32>,
    // Chunk counter of the first chunk of this dispatch (chunk kernels), as two u32 halves.
    counter_lo: u32,
    counter_hi: u32,
    // Chunk kernel: bytes of input in this window. Parent kernel: nodes in the level below.
    input_len: u32,
    // Mode flags OR-ed into every compression (0, or KEYED_HASH).
    mode_flags: u32,
    // Parent kernels: index of the first node of the level below. Batch kernels: first job word.
    src: u32,
    // Index (in chaining values) where this dispatch writes its first output.
    dst: u32,
    // ROOT when this dispatch performs the final compression of the whole input, else 0.
    root: u32,
    // Number of invocations that do work; the rest of the last workgroup returns at once.
    count: u32,
}

@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read> input: array<vec4<u32>>;
@group(0) @binding(2) var<storage, read_write> cvs: array<vec4<u32>>;
@group(0) @binding(3) var<storage, read> jobs: array<u32>;

struct State {
    a: vec4<u32>,
    b: vec4<u32>,
    c: vec4<u32>,
    d: vec4<u32>,
}

struct Cv {
    lo: vec4<u32>,
    hi: vec4<u32>,
}

fn rotr(x: vec4<u32>, n: u32) -> vec4<u32> {
    return (x >> vec4<u32>(n)) | (x << vec4<u32>(32u - n));
}

// The G function applied to four columns (or, after rotating rows, four diagonals) at once.
fn g(s: ptr<function, State>, mx: vec4<u32>, my: vec4<u32>) {
    (*s).a = (*s).a + (*s).b + mx;
    (*s).d = rotr((*s).d ^ (*s).a, 16u);
    (*s).c = (*s).c + (*s).d;
    (*s).b = rotr((*s).b ^ (*s).c, 12u);
    (*s).a = (*s).a + (*s).b + my;
    (*s).d = rotr((*s).d ^ (*s).a, 8u);
    (*s).c = (*s).c + (*s).d;
    (*s).b = rotr((*s).b ^ (*s).c, 7u);
}

fn round_fn(s: ptr<function, State>, m0: vec4<u32>, m1: vec4<u32>, m2: vec4<u32>, m3: vec4<u32>) {
    // Columns: (s0,s4,s8,s12) … (s3,s7,s11,s15) take message words (0,1) (2,3) (4,5) (6,7).
    g(s, vec4<u32>(m0.x, m0.z, m1.x, m1.z), vec4<u32>(m0.y, m0.w, m1.y, m1.w));
    // Diagonals: rotate rows b, c, d left by 1, 2, 3 lanes so each lane holds one diagonal.
    (*s).b = (*s).b.yzwx;
    (*s).c = (*s).c.zwxy;
    (*s).d = (*s).d.wxyz;
    g(s, vec4<u32>(m2.x, m2.z, m3.x, m3.z), vec4<u32>(m2.y, m2.w, m3.y, m3.w));
    (*s).b = (*s).b.wxyz;
    (*s).c = (*s).c.zwxy;
    (*s).d = (*s).d.yzwx;
}

// BLAKE3's compression function, truncated to the 8-word chaining value (also the root hash when
// `flags` contains ROOT).
fn compress(cv: Cv, m: array<vec4<u32>, 4>, counter_lo: u32, counter_hi: u32, block_len: u32, flags: u32) -> Cv {
    var s = State(cv.lo, cv.hi, IV0, vec4<u32>(counter_lo, counter_hi, block_len, flags));
    var m0 = m[0];
    var m1 = m[1];
    var m2 = m[2];
    var m3 = m[3];
    for (var r = 0u; r < 7u; r = r + 1u) {
        round_fn(&s, m0, m1, m2, m3);
        // Message permutation [2, 6, 3, 10, 7, 0, 4, 13, 1, 11, 12, 5, 9, 14, 15, 8].
        let p0 = vec4<u32>(m0.z, m1.z, m0.w, m2.z);
        let p1 = vec4<u32>(m1.w, m0.x, m1.x, m3.y);
        let p2 = vec4<u32>(m0.y, m2.w, m3.x, m1.y);
        let p3 = vec4<u32>(m2.y, m3.z, m3.w, m2.x);
        m0 = p0;
        m1 = p1;
        m2 = p2;
        m3 = p3;
    }
    return Cv(s.a ^ s.c, s.b ^ s.d);
}

// Keeps the bytes of `w` (little-endian word at byte `offset` of its block) that lie below `len`.
fn mask_word(w: u32, offset: u32, len: u32) -> u32 {
    if (offset >= len) {
        return 0u;
    }
    let keep = len - offset;
    if (keep >= 4u) {
        return w;
    }
    return w & ((1u << (keep * 8u)) - 1u);
}

fn mask_vec(w: vec4<u32>, offset: u32, len: u32) -> vec4<u32> {
    return vec4<u32>(
        mask_word(w.x, offset, len),
        mask_word(w.y, offset + 4u, len),
        mask_word(w.z, offset + 8u, len),
        mask_word(w.w, offset + 12u, len),
    );
}

fn key_cv() -> Cv {
    return Cv(params.key_lo, params.key_hi);
}

// Chaining value of one chunk of `chunk_len` bytes (0..=1024) starting at vec4 index `base`.
// `root` is ROOT when this chunk is the whole input, so its last block yields the root hash.
fn hash_chunk(base: u32, chunk_len: u32, counter_lo: u32, counter_hi: u32, root: u32) -> Cv {
    var cv = key_cv();
    let blocks = max(1u, (chunk_len + BLOCK_LEN - 1u) / BLOCK_LEN);
    for (var b = 0u; b < blocks; b = b + 1u) {
        let at = base + b * 4u;
        var m = array<vec4<u32>, 4>(input[at], input[at + 1u], input[at + 2u], input[at + 3u]);
        var block_len = BLOCK_LEN;
        var flags = params.mode_flags;
        if (b == 0u) {
            flags = flags | CHUNK_START;
        }
        if (b + 1u == blocks) {
            block_len = chunk_len - b * BLOCK_LEN;
            flags = flags | CHUNK_END | root;
            if (block_len < BLOCK_LEN) {
                m[0] = mask_vec(m[0], 0u, block_len);
                m[1] = mask_vec(m[1], 16u, block_len);
                m[2] = mask_vec(m[2], 32u, block_len);
                m[3] = mask_vec(m[3], 48u, block_len);
            }
        }
        cv = compress(cv, m, counter_lo, counter_hi, block_len, flags);
    }
    return cv;
}

fn store_cv(index: u32, cv: Cv) {
    cvs[index * 2u] = cv.lo;
    cvs[index * 2u + 1u] = cv.hi;
}

fn load_cv(index: u32) -> Cv {
    return Cv(cvs[index * 2u], cvs[index * 2u + 1u]);
}

fn merge(left: u32, right: u32, root: u32) -> Cv {
    let l = load_cv(left);
    let r = load_cv(right);
    let m = array<vec4<u32>, 4>(l.lo, l.hi, r.lo, r.hi);
    return compress(key_cv(), m, 0u, 0u, BLOCK_LEN, params.mode_flags | PARENT | root);
}

@compute @workgroup_size(64)
fn chunk_cvs(@builtin(global_invocation_id) gid: vec3<u32>) {
    let i = gid.x;
    if (i >= params.count) {
        return;
    }
    let start = i * CHUNK_LEN;
    let chunk_len = min(params.input_len - start, CHUNK_LEN);
    let counter_lo = params.counter_lo + i;
    let counter_hi = params.counter_hi + select(0u, 1u, counter_lo < i);
    store_cv(params.dst + i, hash_chunk(i * (CHUNK_LEN / 16u), chunk_len, counter_lo, counter_hi, params.root));
}

@compute @workgroup_size(64)
fn parent_cvs(@builtin(global_invocation_id) gid: vec3<u32>) {
    let i = gid.x;
    if (i >= params.count) {
        return;
    }
    let left = params.src + 2u * i;
    if (2u * i + 1u >= params.input_len) {
        // Odd node out: carried up unchanged.
        store_cv(params.dst + i, load_cv(left));
        return;
    }
    store_cv(params.dst + i, merge(left, left + 1u, params.root));
}

// Job layout (8 words): vec4 offset of the chunk in `input`, chunk length in bytes, chunk counter
// low and high words, ROOT or 0, destination index, two unused words.
@compute @workgroup_size(64)
fn batch_chunk_cvs(@builtin(global_invocation_id) gid: vec3<u32>) {
    let i = gid.x;
    if (i >= params.count) {
        return;
    }
    let j = params.src + i * 8u;
    let cv = hash_chunk(jobs[j], jobs[j + 1u], jobs[j + 2u], jobs[j + 3u], jobs[j + 4u]);
    store_cv(jobs[j + 5u], cv);
}

// Job layout (4 words): left index, right index, destination index, ROOT or 0.
@compute @workgroup_size(64)
fn batch_parent_cvs(@builtin(global_invocation_id) gid: vec3<u32>) {
    let i = gid.x;
    if (i >= params.count) {
        return;
    }
    let j = params.src + i * 4u;
    store_cv(jobs[j + 2u], merge(jobs[j], jobs[j + 1u], jobs[j + 3u]));
}
