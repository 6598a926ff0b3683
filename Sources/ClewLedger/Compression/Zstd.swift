internal import CZstd
import ClewCore
import Synchronization

/// A zstd failure (compression, decompression or dictionary training), with zstd's own reason.
struct ZstdError: ClewError {
    let reason: String
    var description: String { "zstd: \(reason)" }
    var category: ErrorCategory { .corrupted }

    @inline(__always)
    static func check(_ rc: Int) throws(ZstdError) -> Int {
        if ZSTD_isError(rc) != 0 { throw ZstdError(reason: String(cString: ZSTD_getErrorName(rc))) }
        return rc
    }
}

/// A trained zstd dictionary with its prepared compression and decompression tables.
final class ZstdDictionary: @unchecked Sendable {
    // @unchecked Sendable: the CDict/DDict are immutable after creation and zstd documents them as
    // shareable between threads (each thread uses its own context).
    let id: UInt32
    let bytes: [UInt8]
    let cdict: OpaquePointer
    let ddict: OpaquePointer

    init(id: UInt32, bytes: [UInt8], level: Int32) throws {
        guard let c = bytes.withUnsafeBytes({ ZSTD_createCDict($0.baseAddress, $0.count, level) }) else {
            throw ZstdError(reason: "dictionary \(id) could not be loaded for compression")
        }
        guard let d = bytes.withUnsafeBytes({ ZSTD_createDDict($0.baseAddress, $0.count) }) else {
            ZSTD_freeCDict(c)
            throw ZstdError(reason: "dictionary \(id) could not be loaded for decompression")
        }
        self.id = id
        self.bytes = bytes
        self.cdict = c
        self.ddict = d
    }

    deinit {
        ZSTD_freeCDict(cdict)
        ZSTD_freeDDict(ddict)
    }

    /// Trains a dictionary of at most `capacity` bytes from samples; nil when zstd finds too little
    /// to learn from.
    ///
    /// fastCover with fixed parameters (segments of k = 1,000 bytes, d = 8), not `ZDICT_trainFromBuffer`,
    /// which trains four dictionaries to pick the best k: on 4,000 demo events (1.07 MB) that took 108 ms
    /// against 22 ms here, and the dictionary it picked compressed a held-out 1.07 MB into 133,831 bytes
    /// against 133,431 for this one. A retraining runs beside appends, so its processor time is theirs.
    static func train(samples: [[UInt8]], capacity: Int) -> [UInt8]? {
        let flat = samples.flatMap { $0 }
        let sizes = samples.map { $0.count }
        var dict = [UInt8](repeating: 0, count: capacity)
        var parameters = ZDICT_fastCover_params_t()
        parameters.k = 1_000
        parameters.d = 8
        parameters.f = 20
        parameters.accel = 1
        parameters.steps = 0
        parameters.nbThreads = 1
        parameters.zParams.compressionLevel = 1
        let rc = dict.withUnsafeMutableBytes { d in
            flat.withUnsafeBytes { s in
                sizes.withUnsafeBufferPointer { z in
                    ZDICT_trainFromBuffer_fastCover(d.baseAddress, capacity, s.baseAddress, z.baseAddress, UInt32(samples.count), parameters)
                }
            }
        }
        if ZDICT_isError(rc) != 0 { return nil }
        return Array(dict[0..<rc])
    }
}

/// Compresses records as magicless zstd frames with no dictionary id and no checksum (the record
/// carries its own id and tag), reusing contexts from a pool.
final class ZstdCodec: Sendable {
    let level: Int32
    /// A pooled zstd context. @unchecked Sendable: a context is used by one thread at a time (it is
    /// popped from the pool for the duration of one call) and zstd contexts carry no thread affinity.
    struct Context: @unchecked Sendable { let pointer: OpaquePointer }

    private let compressors = Mutex<[Context]>([])
    private let decompressors = Mutex<[Context]>([])

    init(level: Int32) { self.level = level }

    deinit {
        compressors.withLock { $0.forEach { ZSTD_freeCCtx($0.pointer) } }
        decompressors.withLock { $0.forEach { ZSTD_freeDCtx($0.pointer) } }
    }

    private func withCompressor<T>(_ body: (OpaquePointer) throws -> T) throws -> T {
        let cctx = try compressors.withLock { $0.popLast() } ?? Context(pointer: makeCompressor())
        defer { compressors.withLock { $0.append(cctx) } }
        return try body(cctx.pointer)
    }

    private func makeCompressor() throws(ZstdError) -> OpaquePointer {
        guard let cctx = ZSTD_createCCtx() else { throw ZstdError(reason: "cannot create a compression context (out of memory)") }
        ZSTD_CCtx_setParameter(cctx, clew_zstd_c_format(), clew_zstd_f_magicless())
        ZSTD_CCtx_setParameter(cctx, ZSTD_c_dictIDFlag, 0)
        ZSTD_CCtx_setParameter(cctx, ZSTD_c_checksumFlag, 0)
        ZSTD_CCtx_setParameter(cctx, ZSTD_c_contentSizeFlag, 1)
        return cctx
    }

    private func withDecompressor<T>(_ body: (OpaquePointer) throws -> T) throws -> T {
        let dctx = try decompressors.withLock { $0.popLast() } ?? makeDecompressor()
        defer { decompressors.withLock { $0.append(dctx) } }
        return try body(dctx.pointer)
    }

    private func makeDecompressor() throws(ZstdError) -> Context {
        guard let d = ZSTD_createDCtx() else { throw ZstdError(reason: "cannot create a decompression context (out of memory)") }
        ZSTD_DCtx_setParameter(d, clew_zstd_d_format(), clew_zstd_f_magicless())
        return Context(pointer: d)
    }

    /// The most a frame of `compressed` bytes can decode to: a block holds at most 128 KiB and takes at
    /// least 4 bytes (an RLE block), so a header claiming more is a lie, refused before any allocation.
    static func plausibleSize(compressed: Int) -> Int64 { min(1 << 30, Int64(compressed) << 15 + (1 << 17)) }

    /// Appends the compressed frame of `src` to `out`.
    func compress(_ src: UnsafeRawBufferPointer, dictionary: ZstdDictionary?, into out: inout [UInt8]) throws {
        try withCompressor { cctx in
            if let dictionary {
                _ = try ZstdError.check(ZSTD_CCtx_refCDict(cctx, dictionary.cdict))
            } else {
                _ = try ZstdError.check(ZSTD_CCtx_refCDict(cctx, nil))
                _ = try ZstdError.check(ZSTD_CCtx_setParameter(cctx, ZSTD_c_compressionLevel, level))
            }
            // The frame goes into a new array after `out`'s bytes, uninitialised rather than zero-filled
            // first: zeroing the bound (the whole input's size, for a frame a tenth of it) was ~1.5% of an
            // append's processor time.
            let bound = ZSTD_compressBound(src.count)
            let start = out.count
            out = try [UInt8](unsafeUninitializedCapacity: start + bound) { dst, count in
                out.withUnsafeBufferPointer { head in
                    if let base = head.baseAddress { dst.baseAddress!.initialize(from: base, count: start) }
                }
                count = start
                count += try ZstdError.check(ZSTD_compress2(cctx, dst.baseAddress! + start, bound, src.baseAddress, src.count))
            }
        }
    }

    /// Decompresses one frame, replacing the contents of `out`.
    func decompress(_ src: UnsafeRawBufferPointer, dictionary: ZstdDictionary?, into out: inout [UInt8]) throws {
        let size = clew_zstd_magicless_content_size(src.baseAddress, src.count)
        guard size >= 0, size <= Self.plausibleSize(compressed: src.count) else { throw ZstdError(reason: "frame header is malformed") }
        // The buffer keeps its bytes and is only trimmed or extended to the frame's size: zero-filling a
        // whole block's size first cost about a twentieth of decompressing it.
        if out.count > Int(size) {
            out.removeLast(out.count - Int(size))
        } else if out.count < Int(size) {
            out.append(contentsOf: repeatElement(0, count: Int(size) - out.count))
        }
        try withDecompressor { dctx in
            _ = try ZstdError.check(ZSTD_DCtx_refDDict(dctx, dictionary?.ddict))
            let n = try out.withUnsafeMutableBytes { dst in
                try ZstdError.check(ZSTD_decompressDCtx(dctx, dst.baseAddress, dst.count, src.baseAddress, src.count))
            }
            guard n == Int(size) else { throw ZstdError(reason: "frame decoded to \(n) bytes, header said \(size)") }
        }
    }
}
