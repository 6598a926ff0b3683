import ClewEngine
import ClewForensics
import ClewLedger
import ClewModel
import ClewProjections
import ClewReplay
import Foundation
import HTTPTypes
import Hummingbird
import Mustache
import NIOCore

/// Server-rendered pages. Every page reads through the same views and forensics as the API; charts
/// and graph layouts are drawn by /static/clew.js from JSON the page carries.
enum Dashboard {
    static let library: MustacheLibrary = {
        var library = MustacheLibrary()
        for (name, text) in Templates.all {
            do { try library.register(text, named: name) } catch { preconditionFailure("dashboard template \(name) does not parse: \(error)") }
        }
        return library
    }()

    typealias Page = [String: Any]

    static func render(_ template: String, _ title: String, _ context: ClewContext, _ values: Page) -> Response {
        var page = values
        page["title"] = title
        page["page"] = template
        if let who = context.identity { page["who"] = ["name": who.name, "role": who.role.rawValue] }
        return Reply.html(library.render(page, withTemplate: template) ?? "template \(template) is missing")
    }

    static func json(_ value: JSON.Value) -> String {
        // Safe inside <script type="application/json">: no "</" can close the element.
        value.text.replacingOccurrences(of: "</", with: "<\\/")
    }

    static func time(_ micros: Int64?) -> String {
        guard let micros else { return "-" }
        return String(ISO8601.string(micros: micros).prefix(19)).replacingOccurrences(of: "T", with: " ")
    }

    static func q(_ s: String) -> String {
        s.addingPercentEncoding(withAllowedCharacters: .alphanumerics.union(CharacterSet(charactersIn: "-._~:/"))) ?? s
    }

    static func register(_ router: Router<ClewContext>, _ state: ServerState) {
        state.assets.register(router)
        for pages in [
            sessionPages(state), overviewPages(state), dagPages(state), runsPages(state), dataPages(state), integrityPages(state), slaPages(state),
            settingsPages(state),
        ] {
            router.addRoutes(pages)
        }
    }

    static func clip(_ s: String, _ n: Int) -> String { s.count > n ? String(s.prefix(n - 1)) + "…" : s }

    /// `application/x-www-form-urlencoded` fields.
    static func form(_ text: String) -> [String: String] {
        var out: [String: String] = [:]
        for pair in text.split(separator: "&") {
            let kv = pair.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
            func decode(_ s: Substring) -> String { String(s).replacingOccurrences(of: "+", with: " ").removingPercentEncoding ?? String(s) }
            if kv.count == 2 { out[decode(kv[0])] = decode(kv[1]) }
        }
        return out
    }
}
