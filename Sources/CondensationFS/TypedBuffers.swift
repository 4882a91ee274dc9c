/// `withUnsafe…Bytes` rethrow untyped errors; these keep FSError typed through buffer access.
extension Array where Element == UInt8 {
    mutating func withMutableBytes<T>(_ body: (UnsafeMutableRawBufferPointer) throws(FSError) -> T) throws(FSError) -> T {
        var result: Result<T, FSError>?
        withUnsafeMutableBytes { b in result = Result { () throws(FSError) in try body(b) } }
        return try result!.get()
    }

    func withBytes<T>(_ body: (UnsafeRawBufferPointer) throws(FSError) -> T) throws(FSError) -> T {
        var result: Result<T, FSError>?
        withUnsafeBytes { b in result = Result { () throws(FSError) in try body(b) } }
        return try result!.get()
    }
}
