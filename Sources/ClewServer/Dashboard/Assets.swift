import Foundation
import HTTPTypes
import Hummingbird
import NIOCore

/// Static files: Chart.js and dagre from where Debian installs them (`libjs-chart.js`,
/// `node-dagre-layout`), and the dashboard's own script and style sheet.
struct Assets: Sendable {
    /// Served name → (Debian package, path under one of the roots).
    static let debian: [String: (package: String, path: String)] = [
        "chart.js": ("libjs-chart.js", "chart.js/chart.min.js"),
        "dagre.js": ("node-dagre-layout", "dagre/dist/dagre.min.js"),
    ]

    let files: [String: (type: String, bytes: Data)]
    let missing: [String: String]

    init(roots: [URL]) {
        var files: [String: (String, Data)] = ["clew.js": ("text/javascript", Data(DashboardScript.text.utf8)), "clew.css": ("text/css", Data(DashboardStyle.text.utf8))]
        var missing: [String: String] = [:]
        for (name, (package, path)) in Self.debian {
            if let data = roots.lazy.compactMap({ try? Data(contentsOf: $0.appendingPathComponent(path)) }).first {
                files[name] = ("text/javascript", data)
            } else {
                missing[name] = "\(name) is served from Debian's \(package) package, which is not installed (apt-get install \(package))"
            }
        }
        self.files = files
        self.missing = missing
    }

    func register(_ router: Router<ClewContext>) {
        router.get("/static/:name") { _, context -> Response in
            let name = try context.parameters.require("name")
            guard let file = files[name] else {
                throw APIError(.notFound, missing[name] ?? "no static file '\(name)'")
            }
            return Response(
                status: .ok, headers: [.contentType: file.type + "; charset=utf-8", .cacheControl: "public, max-age=3600"],
                body: .init(byteBuffer: ByteBuffer(bytes: file.bytes)))
        }
    }
}
