import XCTest
@testable import Condensation

/// `s3://` URLs, credentials files and S3's XML answers, without a network.
final class S3URLTests: XCTestCase {
    func testURLForms() throws {
        let l = try S3Location(url: "s3://my-bucket/a/b/?endpoint=http://127.0.0.1:7480/&region=eu-west-1")
        XCTAssertEqual(l.bucket, "my-bucket")
        XCTAssertEqual(l.prefix, "a/b")
        XCTAssertEqual(l.endpoint, "http://127.0.0.1:7480")
        XCTAssertEqual(l.region, "eu-west-1")
        XCTAssertEqual([l.host, String(l.port), l.authority], ["127.0.0.1", "7480", "127.0.0.1:7480"])
        XCTAssertEqual(l.key("objects/ab"), "a/b/objects/ab")
        XCTAssertEqual(l.url, "s3://my-bucket/a/b?endpoint=http://127.0.0.1:7480&region=eu-west-1")
        XCTAssertEqual(try S3Location(url: l.url), l, "the normal form reads back as itself")

        let root = try S3Location(url: "s3://bkt?endpoint=http%3A%2F%2Fhost")
        XCTAssertEqual([root.prefix, root.host, String(root.port), root.region], ["", "host", "80", "us-east-1"])
        XCTAssertEqual(root.key("objects/ab"), "objects/ab")

        let tunnel = try S3Location(url: "s3://b1b/p?endpoint=http://s3.eu-west-1.amazonaws.com&connect=127.0.0.1:8443&region=eu-west-1")
        XCTAssertEqual([tunnel.host, String(tunnel.port)], ["127.0.0.1", "8443"], "connects to the tunnel")
        XCTAssertEqual(tunnel.authority, "s3.eu-west-1.amazonaws.com", "signs for and names the endpoint")
        XCTAssertEqual(try S3Location(url: tunnel.url), tunnel)
    }

    func testBadURLs() {
        func fails(_ url: String, _ expected: S3ConfigurationError) {
            XCTAssertThrowsError(try S3Location(url: url), url) { XCTAssertEqual($0 as? S3ConfigurationError, expected, url) }
        }
        fails("http://x", .notS3("http://x"))
        fails("s3://ab?endpoint=http://h", .badBucket("s3://ab?endpoint=http://h"))
        fails("s3://Big?endpoint=http://h", .badBucket("s3://Big?endpoint=http://h"))
        fails("s3://bucket", .noEndpoint("s3://bucket"))
        fails("s3://bucket?endpoint=https://s3.amazonaws.com", .httpsEndpoint("https://s3.amazonaws.com"))
        fails("s3://bucket?endpoint=ftp://h", .badEndpoint("ftp://h"))
        fails("s3://bucket?endpoint=http://h:0", .badEndpoint("http://h:0"))
        fails("s3://bucket?endpoint=http://h:99999", .badEndpoint("http://h:99999"))
        fails("s3://bucket?endpoint=http://h/path", .badEndpoint("http://h/path"))
        fails("s3://bucket?endpoint=http://h&color=red", .badQuery("unknown parameter color"))
        fails("s3://bucket?endpoint=http://h&region=EU", .badQuery("region EU is not a region name such as us-east-1"))
        fails("s3://bucket?endpoint=http://h&connect=nowhere", .badQuery("connect=nowhere is not HOST:PORT"))
        for e in [S3ConfigurationError.httpsEndpoint("https://x"), .noEndpoint("s3://b"), .noCredentials("why")] {
            XCTAssertFalse(e.description.contains("\n"), "one line")
        }
    }

    func testCredentialsFile() {
        let text = """
            # comment
            [default]
            aws_access_key_id = AKIDDEFAULT
            aws_secret_access_key=secret/default
            [profile work]
            aws_access_key_id=AKIDWORK
            aws_secret_access_key = secret-work
            aws_session_token = token
            [broken]
            aws_access_key_id = only-id
            """
        XCTAssertEqual(S3Credentials.parseCredentialsFile(text, profile: "default"),
                       S3Credentials(accessKeyId: "AKIDDEFAULT", secretAccessKey: "secret/default"))
        XCTAssertEqual(S3Credentials.parseCredentialsFile(text, profile: "work"),
                       S3Credentials(accessKeyId: "AKIDWORK", secretAccessKey: "secret-work", sessionToken: "token"))
        XCTAssertNil(S3Credentials.parseCredentialsFile(text, profile: "broken"))
        XCTAssertNil(S3Credentials.parseCredentialsFile(text, profile: "absent"))
    }

    func testXMLScanning() {
        let body = Array("""
            <?xml version="1.0"?><ListBucketResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/"><IsTruncated>true</IsTruncated>\
            <Contents><Key>a&amp;b</Key><Size>12</Size></Contents><Contents><Key>c&#x41;&#66;</Key><Size>3</Size></Contents>\
            <NextContinuationToken>tok&lt;1&gt;</NextContinuationToken><KeyCount>2</KeyCount></ListBucketResult>
            """.utf8)
        XCTAssertEqual(S3XML.elements("ListBucketResult", in: body).count, 1, "an element with attributes")
        let contents = S3XML.elements("Contents", in: body)
        XCTAssertEqual(contents.map { S3XML.value("Key", in: body, within: $0) }, ["a&b", "cAB"])
        XCTAssertEqual(S3XML.value("NextContinuationToken", in: body), "tok<1>")
        XCTAssertNil(S3XML.value("Key", in: body, within: 0..<10), "bounded by the range")
        XCTAssertEqual(S3XML.value("Key", in: Array("<Key>cut off".utf8)), nil, "an unclosed element is not read")
        XCTAssertEqual(S3XML.value("KeyCount", in: body), "2", "<KeyCount> is not <Key>")
    }
}
