import XCTest
@testable import Condensation

/// AWS Signature Version 4 against AWS's published examples; the expected signatures are AWS's own,
/// copied from the documents named on each group, not computed here.
final class S3SigningTests: XCTestCase {
    // MARK: The SigV4 test suite (AWS General Reference, "Signature Version 4 test suite")

    private let suiteCredentials = S3Credentials(accessKeyId: "AKIDEXAMPLE",
                                                 secretAccessKey: "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY")
    private let suiteDate = "20150830T123600Z"

    private func suite(_ method: String, _ path: String, query: [(String, String)] = [],
                       headers: [(String, String)] = []) -> (authorization: String, canonical: String) {
        let r = S3Signing.Request(method: method, path: path, query: query,
                                  headers: [("Host", "example.amazonaws.com"), ("X-Amz-Date", suiteDate)] + headers)
        return (S3Signing.authorization(r, credentials: suiteCredentials, amzDate: suiteDate, region: "us-east-1", service: "service"),
                S3Signing.canonicalRequest(r))
    }

    private func expected(_ signed: String, _ signature: String) -> String {
        "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, SignedHeaders=\(signed), Signature=\(signature)"
    }

    func testGetVanilla() {
        let (auth, canonical) = suite("GET", "/")
        XCTAssertEqual(canonical, """
            GET
            /

            host:example.amazonaws.com
            x-amz-date:20150830T123600Z

            host;x-amz-date
            e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855
            """)
        XCTAssertEqual(auth, expected("host;x-amz-date", "5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31"))
    }

    func testStringToSignAndKeyOfGetVanilla() {
        let r = S3Signing.Request(method: "GET", path: "/", headers: [("Host", "example.amazonaws.com"), ("X-Amz-Date", suiteDate)])
        XCTAssertEqual(S3Signing.stringToSign(r, amzDate: suiteDate, region: "us-east-1", service: "service"), """
            AWS4-HMAC-SHA256
            20150830T123600Z
            20150830/us-east-1/service/aws4_request
            bb579772317eb040ac9ed261061d46c1f17a8133879d6129b6e1c25292927e63
            """)
    }

    func testPostVanilla() {
        XCTAssertEqual(suite("POST", "/").authorization,
                       expected("host;x-amz-date", "5da7c1a2acd57cee7505fc6676e4e544621c30862966e37dddb68e92efbe5d6b"))
    }

    func testGetVanillaQueryOrderKeyCase() {
        XCTAssertEqual(suite("GET", "/", query: [("Param2", "value2"), ("Param1", "value1")]).authorization,
                       expected("host;x-amz-date", "b97d918cfa904a5beff61c982a1b6f458b799221646efd99d3219ec94cdf2500"))
    }

    func testGetVanillaQueryOrderKey() {
        XCTAssertEqual(suite("GET", "/", query: [("Param1", "value2"), ("Param1", "Value1")]).authorization,
                       expected("host;x-amz-date", "eedbc4e291e521cf13422ffca22be7d2eb8146eecf653089df300a15b2382bd1"))
    }

    func testGetVanillaQueryOrderValue() {
        XCTAssertEqual(suite("GET", "/", query: [("Param1", "value2"), ("Param1", "value1")]).authorization,
                       expected("host;x-amz-date", "5772eed61e12b33fae39ee5e7012498b51d56abc0abb7c60486157bd471c4694"))
    }

    func testGetVanillaEmptyQueryKey() {
        XCTAssertEqual(suite("GET", "/", query: [("Param1", "value1")]).authorization,
                       expected("host;x-amz-date", "a67d582fa61cc504c4bae71f336f98b97f1ea3c7a6bfe1b6e45aec72011b9aeb"))
    }

    func testPostVanillaQuery() {
        XCTAssertEqual(suite("POST", "/", query: [("Param1", "value1")]).authorization,
                       expected("host;x-amz-date", "28038455d6de14eafc1f9222cf5aa6f1a96197d7deb8263271d420d138af7f11"))
    }

    func testGetVanillaQueryUnreserved() {
        let u = "-._~0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
        XCTAssertEqual(suite("GET", "/", query: [(u, u)]).authorization,
                       expected("host;x-amz-date", "9c3e54bfcdf0b19771a7f523ee5669cdf59bc7cc0884027167c21bb143a40197"))
    }

    func testGetUnreserved() {
        XCTAssertEqual(suite("GET", "/-._~0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz").authorization,
                       expected("host;x-amz-date", "07ef7494c76fa4850883e2b006601f940f8a34d404d0cfa977f52a65bbf5f24f"))
    }

    func testGetSpace() {
        let (auth, canonical) = suite("GET", "/example space/")
        XCTAssertTrue(canonical.hasPrefix("GET\n/example%20space/\n"))
        XCTAssertEqual(auth, expected("host;x-amz-date", "652487583200325589f1fba4c7e578f72c47cb61beeca81406b39ddec1366741"))
    }

    func testGetHeaderValueTrim() {
        let (auth, canonical) = suite("GET", "/", headers: [("My-Header1", " value1"), ("My-Header2", " \"a   b   c\"")])
        XCTAssertTrue(canonical.contains("my-header1:value1\nmy-header2:\"a b c\"\n"))
        XCTAssertEqual(auth, expected("host;my-header1;my-header2;x-amz-date",
                                      "acc3ed3afb60bb290fc8d2dd0098b9911fcaa05412b367055dee359757a9c736"))
    }

    func testGetHeaderKeyDuplicate() {
        let (auth, canonical) = suite("GET", "/", headers: [("My-Header1", "value2"), ("My-Header1", "value2"), ("My-Header1", "value1")])
        XCTAssertTrue(canonical.contains("my-header1:value2,value2,value1\n"))
        XCTAssertEqual(auth, expected("host;my-header1;x-amz-date", "c9d5ea9f3f72853aea855b47ea873832890dbdd183b4468f858259531a5138ea"))
    }

    func testGetHeaderValueOrder() {
        let headers = ["value4", "value1", "value3", "value2"].map { ("My-Header1", $0) }
        XCTAssertEqual(suite("GET", "/", headers: headers).authorization,
                       expected("host;my-header1;x-amz-date", "08c7e5a9acfcfeb3ab6b2185e75ce8b1deb5e634ec47601a50643f830c755c01"))
    }

    func testPostHeaderValueCase() {
        XCTAssertEqual(suite("POST", "/", headers: [("My-Header1", "VALUE1")]).authorization,
                       expected("host;my-header1;x-amz-date", "cdbc9802e29d2942e5e10b5bccfdd67c5f22c7c4e8ae67b53629efa58b974b7d"))
    }

    func testPostStsHeaderBefore() {
        let token = "AQoDYXdzEPT//////////wEXAMPLEtc764bNrC9SAPBSM22wDOk4x4HIZ8j4FZTwdQWLWsKWHGBuFqwAeMicRXmxfpSPfIeoIYRqTflfKD8YUuwthAx7mSEI/qkPpKPi/kMcGdQrmGdeehM4IC1NtBmUpp2wUE8phUZampKsburEDy0KPkyQDYwT7WZ0wq5VSXDvp75YU9HFvlRd8Tx6q6fE8YQcHNVXAkiY9q6d+xo0rKwT38xVqr7ZD0u0iPPkUL64lIZbqBAz+scqKmlzm8FDrypNC9Yjc8fPOLn9FX9KSYvKTr4rvx3iSIlTJabIQwj2ICCR/oLxBA=="
        XCTAssertEqual(suite("POST", "/", headers: [("X-Amz-Security-Token", token)]).authorization,
                       expected("host;x-amz-date;x-amz-security-token", "85d96828115b5dc0cfc3bd16ad9e210dd772bbebba041836c64533a82be05ead"))
    }

    // MARK: The S3 API reference's examples ("Signature calculations for the Authorization header:
    // transferring payload in a single chunk")

    private let s3Credentials = S3Credentials(accessKeyId: "AKIAIOSFODNN7EXAMPLE",
                                              secretAccessKey: "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY")
    private let s3Date = "20130524T000000Z"

    private func s3(_ method: String, _ path: String, query: [(String, String)] = [], headers: [(String, String)],
                    payload: String = S3Signing.emptyPayloadHash) -> String {
        let r = S3Signing.Request(method: method, path: path, query: query,
                                  headers: [("Host", "examplebucket.s3.amazonaws.com"), ("x-amz-date", s3Date),
                                            ("x-amz-content-sha256", payload)] + headers,
                                  payloadHash: payload)
        return S3Signing.signature(r, credentials: s3Credentials, amzDate: s3Date, region: "us-east-1")
    }

    func testS3GetObject() {
        XCTAssertEqual(s3("GET", "/test.txt", headers: [("Range", "bytes=0-9")]),
                       "f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41")
    }

    func testS3PutObject() {
        let body = Array("Welcome to Amazon S3.".utf8)
        let payload = Hash.of(body).hex
        XCTAssertEqual(payload, "44ce7dd67c959e0d3524ffac1771dfbba87d2b6b4b4e99e42034a8b803f8b072")
        XCTAssertEqual(s3("PUT", "/test$file.text", headers: [("Date", "Fri, 24 May 2013 00:00:00 GMT"),
                                                               ("x-amz-storage-class", "REDUCED_REDUNDANCY")], payload: payload),
                       "98ad721746da40c64f1a55b78f14c238d841ea1380cd77a1b5971af0ece108bd")
    }

    func testS3GetBucketLifecycle() {
        XCTAssertEqual(s3("GET", "/", query: [("lifecycle", "")], headers: []),
                       "fea454ca298b7da1c68078a5d1bdbfbbe0d65c699e0f91ac7a200a0136783543")
    }

    func testS3ListObjects() {
        XCTAssertEqual(s3("GET", "/", query: [("max-keys", "2"), ("prefix", "J")], headers: []),
                       "34b48302e7b5fa45bde8084f4b7868a86f0a534bc59db6670ed5711ef69dc6f7")
    }

    // MARK: Pieces

    func testAmzDate() {
        XCTAssertEqual(S3Signing.amzDate(epochSeconds: 1_440_938_160), "20150830T123600Z")
        XCTAssertEqual(S3Signing.amzDate(epochSeconds: 951_782_400), "20000229T000000Z")
    }

    func testURIEncoding() {
        XCTAssertEqual(S3Signing.uriEncode("a b/c~d*+=é", keepSlash: true), "a%20b/c~d%2A%2B%3D%C3%A9")
        XCTAssertEqual(S3Signing.uriEncode("a/b", keepSlash: false), "a%2Fb")
    }
}
