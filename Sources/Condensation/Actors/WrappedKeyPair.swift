/// A key pair file protected by a passphrase (docs/format.md, "Wrapped key pair file").
///
/// The plain key pair file's bytes are encrypted with AES-256-CTR under a key derived from the
/// passphrase by scrypt, with a fresh random salt every time the file is written (so no derived key
/// ever encrypts two plaintexts, which CTR with a zero counter forbids). An HMAC-SHA256 over the
/// ciphertext, keyed with a second derived key, detects any change; a separate check value, keyed the
/// same way, tells a wrong passphrase from a damaged file. The wrapped file is itself a Condensation
/// record object:
///
///     wrapped key pair → 1
///     scrypt → { log n → 17, r → 8, p → 1, salt → <32 random bytes> }
///     check → HMAC-SHA256(K_mac, "cdsfs passphrase check")
///     ciphertext → AES-256-CTR(K_enc, counter 0) of the plain key pair file
///     mac → HMAC-SHA256(K_mac, ciphertext)
///
/// where `K_enc ‖ K_mac` = scrypt(passphrase, salt, N = 2^(log n), r, p, 64 bytes).
public enum WrappedKeyPair {
    /// scrypt's cost. The default, N = 2^17, r = 8, p = 1, is what OWASP recommends for scrypt
    /// today: 128 MiB of memory and a few hundred milliseconds per try, so a guessing attack on a
    /// stolen file needs that much memory and time for every guess (GPUs and ASICs gain little when
    /// each try needs 128 MiB), while a person waits under half a second once per command. Lower N
    /// (2^15: 32 MiB) would suit a small device; higher N makes every `cdsfs` command noticeably
    /// slower. The cost is written into the file, so it can change without breaking old files.
    public struct Parameters: Sendable, Equatable {
        public var logN: Int
        public var r: Int
        public var p: Int

        public init(logN: Int, r: Int, p: Int) {
            self.logN = logN
            self.r = r
            self.p = p
        }

        public static let standard = Parameters(logN: 17, r: 8, p: 1)

        /// Memory scrypt needs: 128 · r · N bytes.
        public var memory: Int { 128 * r << logN }

        /// What a reader accepts: enough to keep a hostile file from asking for gigabytes of memory or
        /// minutes of work (at most 256 MiB, p ≤ 4), and nothing so cheap it could only be a mistake.
        public var isAcceptable: Bool {
            (10...20).contains(logN) && (1...32).contains(r) && (1...4).contains(p) && memory <= 256 << 20
        }
    }

    /// Why a wrapped key pair file does not open.
    public enum Failure: Error, Equatable, Sendable, CustomStringConvertible {
        /// The passphrase does not fit the file (or its salt or check value was damaged).
        case wrongPassphrase
        /// The file is not a wrapped key pair file, or one of its fields is missing or malformed
        /// (a truncated file, for one).
        case malformed(String)
        /// A later format version, or scrypt costs beyond what `Parameters.isAcceptable` allows.
        case unsupported(String)
        /// The passphrase fits, but the ciphertext does not match its MAC: the file was changed.
        case tampered
        /// The MAC holds but the decrypted bytes are not a key pair file (written wrongly).
        case badKeyPair(KeyPair.Invalid)
        /// scrypt failed (out of memory).
        case keyDerivationFailed

        public var description: String {
            switch self {
            case .wrongPassphrase: return "wrong passphrase"
            case .malformed(let why): return "not a wrapped key pair file (\(why))"
            case .unsupported(let why): return "unsupported wrapped key pair file (\(why))"
            case .tampered: return "the encrypted key pair does not match its MAC: the file was changed or damaged"
            case .badKeyPair(let why): return "the decrypted key pair is not valid (\(why))"
            case .keyDerivationFailed: return "scrypt failed (not enough memory?)"
            }
        }
    }

    static let version: UInt64 = 1
    static let saltLength = 32
    static let checkMessage = Array("cdsfs passphrase check".utf8)

    /// Whether the bytes are a wrapped key pair file (as opposed to a plain one, or neither): a
    /// record with a `wrapped key pair` field and no `rsa key` field (which every plain file has), so
    /// that no file is both. Nothing is decrypted.
    public static func isWrapped(_ fileBytes: [UInt8]) -> Bool {
        guard let object = try? Object(bytes: fileBytes), let record = try? Record(object: object) else { return false }
        return record.contains("wrapped key pair") && !record.contains("rsa key")
    }

    /// The scrypt costs a wrapped file names (nil if it is not one).
    public static func parameters(of fileBytes: [UInt8]) -> Parameters? {
        try? Fields(fileBytes).parameters
    }

    /// The wrapped file for a key pair.
    public static func wrap(_ keyPair: KeyPair, passphrase: [UInt8], parameters: Parameters = .standard) throws(Failure) -> [UInt8] {
        try wrap(plain: keyPair.fileBytes, passphrase: passphrase, parameters: parameters)
    }

    /// Wraps plain key pair file bytes, with a fresh salt.
    public static func wrap(plain: [UInt8], passphrase: [UInt8], parameters: Parameters = .standard) throws(Failure) -> [UInt8] {
        guard parameters.isAcceptable else { throw .unsupported("scrypt cost \(parameters)") }
        let salt = Random.bytes(saltLength)
        let (encryptionKey, macKey) = try deriveKeys(passphrase: passphrase, salt: salt, parameters: parameters)
        let ciphertext = encryptionKey.applied(plain)
        var record = Record()
        record.add("wrapped key pair", unsigned: version)
        var scrypt = Record(text: "scrypt")
        scrypt.add("log n", unsigned: UInt64(parameters.logN))
        scrypt.add("r", unsigned: UInt64(parameters.r))
        scrypt.add("p", unsigned: UInt64(parameters.p))
        scrypt.add("salt", bytes: salt)
        record.add(scrypt)
        record.add("check", bytes: HMAC.sha256(key: macKey, checkMessage))
        record.add("ciphertext", bytes: ciphertext)
        record.add("mac", bytes: HMAC.sha256(key: macKey, ciphertext))
        return record.serialized
    }

    /// Opens a wrapped file: the key pair inside.
    public static func unwrap(_ fileBytes: [UInt8], passphrase: [UInt8]) throws(Failure) -> KeyPair {
        let plain = try unwrapPlain(fileBytes, passphrase: passphrase)
        do { return try KeyPair(fileBytes: plain) } catch { throw .badKeyPair(error) }
    }

    /// Opens a wrapped file: the plain key pair file's bytes.
    public static func unwrapPlain(_ fileBytes: [UInt8], passphrase: [UInt8]) throws(Failure) -> [UInt8] {
        let fields = try Fields(fileBytes)
        let (encryptionKey, macKey) = try deriveKeys(passphrase: passphrase, salt: fields.salt, parameters: fields.parameters)
        guard constantTimeEqual(HMAC.sha256(key: macKey, checkMessage), fields.check) else { throw .wrongPassphrase }
        guard constantTimeEqual(HMAC.sha256(key: macKey, fields.ciphertext), fields.mac) else { throw .tampered }
        return encryptionKey.applied(fields.ciphertext)
    }

    // MARK: Parts

    /// The fields of a wrapped file, checked for shape and bounds before any work is done.
    struct Fields {
        var parameters: Parameters
        var salt: [UInt8]
        var check: [UInt8]
        var ciphertext: [UInt8]
        var mac: [UInt8]

        init(_ fileBytes: [UInt8]) throws(Failure) {
            let record: Record
            do { record = try Record(object: Object(bytes: fileBytes)) } catch { throw .malformed("\(error)") }
            guard let v = record.value("wrapped key pair") else { throw .malformed("no `wrapped key pair` field") }
            guard v.unsigned == WrappedKeyPair.version else {
                throw .unsupported("format version \(v.unsigned.map(String.init) ?? "?")")
            }
            guard let s = record.child("scrypt") else { throw .malformed("no `scrypt` field") }
            func small(_ label: String) throws(Failure) -> Int {
                guard let value = s.value(label)?.unsigned else { throw .malformed("no scrypt `\(label)`") }
                guard value <= 1 << 20 else { throw .unsupported("scrypt \(label) = \(value)") }
                return Int(value)
            }
            parameters = Parameters(logN: try small("log n"), r: try small("r"), p: try small("p"))
            guard parameters.isAcceptable else {
                throw .unsupported("scrypt cost log n = \(parameters.logN), r = \(parameters.r), p = \(parameters.p)")
            }
            func bytes(_ r: Record, _ label: String, count: Int?) throws(Failure) -> [UInt8] {
                guard let b = r.bytes(label) else { throw .malformed("no `\(label)`") }
                if let count, b.count != count { throw .malformed("`\(label)` is \(b.count) bytes, not \(count)") }
                return Array(b)
            }
            salt = try bytes(s, "salt", count: nil)
            guard (16...1024).contains(salt.count) else { throw .malformed("a salt of \(salt.count) bytes") }
            check = try bytes(record, "check", count: 32)
            ciphertext = try bytes(record, "ciphertext", count: nil)
            guard !ciphertext.isEmpty else { throw .malformed("empty ciphertext") }
            mac = try bytes(record, "mac", count: 32)
        }
    }

    /// scrypt → 64 bytes: the AES key, then the HMAC key.
    static func deriveKeys(passphrase: [UInt8], salt: [UInt8], parameters: Parameters) throws(Failure) -> (AESKey, [UInt8]) {
        let derived: [UInt8]
        do {
            derived = try Scrypt.derive(passphrase: passphrase, salt: salt, n: UInt64(1) << UInt64(parameters.logN),
                                        r: UInt64(parameters.r), p: UInt64(parameters.p), length: 64)
        } catch { throw .keyDerivationFailed }
        return (try! AESKey(bytes: Array(derived[0..<32])), Array(derived[32..<64]))
    }

    static func constantTimeEqual(_ a: [UInt8], _ b: [UInt8]) -> Bool {
        guard a.count == b.count else { return false }
        var difference: UInt8 = 0
        for i in a.indices { difference |= a[i] ^ b[i] }
        return difference == 0
    }
}
