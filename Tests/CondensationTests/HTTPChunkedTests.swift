import Glibc
import XCTest
@testable import Condensation

/// The HTTP client reading chunked bodies that arrive in pieces, each piece ending exactly where the
/// reader's buffer runs empty (radosgw's answers made the line reader index past its buffer here).
final class HTTPChunkedTests: XCTestCase {
    /// A one-connection server on 127.0.0.1 that reads a request head, then sends `pieces` one by one
    /// with a pause between them (so each arrives in its own read). Returns the port.
    private func serve(_ pieces: [String]) throws -> Int32 {
        let listener = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        XCTAssertGreaterThanOrEqual(listener, 0)
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        address.sin_port = 0
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        _ = withUnsafePointer(to: &address) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(listener, $0, length) } }
        listen(listener, 1)
        _ = withUnsafeMutablePointer(to: &address) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(listener, $0, &length) } }
        let port = Int32(UInt16(bigEndian: address.sin_port))
        let thread = Thread {
            let c = accept(listener, nil, nil)
            var buffer = [UInt8](repeating: 0, count: 4096)
            var head: [UInt8] = []
            while !head.suffix(4).elementsEqual([13, 10, 13, 10]) {
                let n = recv(c, &buffer, buffer.count, 0)
                if n <= 0 { break }
                head += buffer[0..<n]
            }
            for piece in pieces {
                _ = piece.utf8CString.withUnsafeBufferPointer { send(c, $0.baseAddress, $0.count - 1, Int32(MSG_NOSIGNAL)) }
                usleep(30_000)
            }
            close(c)
            close(listener)
        }
        thread.start()
        return port
    }

    private func get(port: Int32) -> Result<HTTPResponse, HTTPTransportError> {
        let client = HTTPClient(host: "127.0.0.1", port: Int(port), authority: "127.0.0.1:\(port)", connectTimeout: 5,
                                readTimeout: 5, maximumIdleConnections: 1, maximumResponseSize: 1 << 20, userAgent: "test")
        return client.exchange("GET", "/", headers: { [] }, body: nil)
    }

    func testChunksSplitAtEveryBoundary() throws {
        let port = try serve([
            "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Type: application/xml\r\n\r\n",
            "5\r\nhello\r\n",      // a whole chunk, then the buffer is empty
            "6\r\n",               // a size line alone
            " world\r\n",          // its data alone
            "1",                   // half a size line
            "\r\n!\r\n0\r\n",
            "\r\n",                // the final empty line alone
        ])
        guard case .success(let r) = get(port: port) else { return XCTFail("no response") }
        XCTAssertEqual(r.status, 200)
        XCTAssertEqual(String(decoding: r.body, as: UTF8.self), "hello world!")
    }

    func testHeadersSplitAcrossReads() throws {
        let port = try serve(["HTTP/1.1 200 OK\r\nContent-", "Length: 3\r\n", "\r\n", "abc"])
        guard case .success(let r) = get(port: port) else { return XCTFail("no response") }
        XCTAssertEqual(r.header("content-length"), "3")
        XCTAssertEqual(r.body, Array("abc".utf8))
    }

    func testABadChunkSizeIsMalformedNotACrash() throws {
        let port = try serve(["HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n", "zz\r\nabc\r\n0\r\n\r\n"])
        guard case .failure(.malformed) = get(port: port) else { return XCTFail("a bad chunk size is malformed") }
    }
}
