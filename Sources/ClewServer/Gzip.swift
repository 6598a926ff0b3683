import CompressNIO
import HTTPTypes
import NIOCore

/// gzip request bodies (Content-Encoding: gzip), decoded with zlib through compress-nio.
enum Gzip {
    static func decode(_ buffer: inout ByteBuffer, limit: Int) throws -> ByteBuffer {
        do {
            return try buffer.decompress(with: .gzip(), maxSize: limit)
        } catch let error as CompressNIOError where error == .bufferOverflow {
            throw APIError(.contentTooLarge, "gzip body inflates to more than \(limit) bytes")
        } catch {
            throw APIError(.badRequest, "body is not valid gzip: \(error)")
        }
    }
}
