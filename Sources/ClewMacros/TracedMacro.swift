import Foundation
import SwiftCompilerPlugin
import SwiftDiagnostics
import SwiftSyntax
import SwiftSyntaxBuilder
import SwiftSyntaxMacros

/// `#traced { ctx in … }`: the closure again, with each binding of its own body recorded through
/// `ctx` as a step with its source line: `let`/`var` declarations with a value, `for` loop variables,
/// and assignments (`x = …`, `x += …`) to names. A binding that runs many times (a loop) is recorded
/// for its first runs, then once more with its last value and count when the closure ends
/// (`TracedSites` in ClewEngine). Nested closures and functions are scopes of their own, left as written.
public struct TracedMacro: ExpressionMacro {
    public static func expansion(of node: some FreestandingMacroExpansionSyntax, in context: some MacroExpansionContext) throws -> ExprSyntax {
        guard let closure = node.trailingClosure ?? node.arguments.first?.expression.as(ClosureExprSyntax.self) else {
            throw Problem("#traced takes a closure: #traced { ctx in … }", at: Syntax(node))
        }
        guard let ctx = contextName(closure) else {
            throw Problem("#traced needs the closure's TaskContext parameter named: #traced { ctx in … }", at: Syntax(closure))
        }
        var rewriter = Rewriter(context: context)
        let body = rewriter.rewrite(closure.statements)
        if rewriter.sites.isEmpty { return ExprSyntax(closure) }
        let sites = rewriter.sites.map { "(\(literal($0.name)), \(literal($0.source)))" }.joined(separator: ", ")
        let prologue: CodeBlockItemListSyntax = """
            var __clewTrace = \(raw: ctx).traced(sites: [\(raw: sites)])
            defer { __clewTrace.finish() }
            """
        var rewritten = closure
        rewritten.statements = CodeBlockItemListSyntax(Array(prologue) + Array(body))
        return ExprSyntax(rewritten)
    }

    /// The name of the closure's first parameter (`{ ctx in }` or `{ (ctx: TaskContext) in }`).
    static func contextName(_ closure: ClosureExprSyntax) -> String? {
        guard let parameters = closure.signature?.parameterClause else { return nil }
        switch parameters {
        case .simpleInput(let list): return list.first.map { $0.name.text }.flatMap { $0 == "_" ? nil : $0 }
        case .parameterClause(let clause):
            guard let first = clause.parameters.first else { return nil }
            let name = (first.secondName ?? first.firstName).text
            return name == "_" ? nil : name
        }
    }

    static func literal(_ text: String) -> String {
        "\"" + text.replacingOccurrences(of: "\\", with: "\\\\").replacingOccurrences(of: "\"", with: "\\\"") + "\""
    }
}

/// Walks a closure's statements (and the blocks nested in them: `if`, `guard`, loops, `do`, `switch`),
/// adding `__clewTrace.hit(K, name)` after each binding; site K is (name, file:line).
struct Rewriter {
    let context: any MacroExpansionContext
    var sites: [(name: String, source: String)] = []

    init(context: some MacroExpansionContext) { self.context = context }

    mutating func site(_ name: String, _ node: some SyntaxProtocol) -> CodeBlockItemSyntax {
        let location = context.location(of: node, at: .afterLeadingTrivia, filePathMode: .fileID)
        var source = "?"
        if let location, let file = location.file.as(StringLiteralExprSyntax.self)?.representedLiteralValue,
            let line = location.line.as(IntegerLiteralExprSyntax.self)?.literal.text
        {
            source = "\(file.split(separator: "/").last.map(String.init) ?? file):\(line)"
        }
        sites.append((name, source))
        return CodeBlockItemSyntax(item: .expr("__clewTrace.hit(\(raw: sites.count - 1), \(raw: name))"))
    }

    mutating func rewrite(_ items: CodeBlockItemListSyntax) -> CodeBlockItemListSyntax {
        var out: [CodeBlockItemSyntax] = []
        for item in items {
            switch item.item {
            case .decl(let decl):
                out.append(item)
                if let v = decl.as(VariableDeclSyntax.self) {
                    for binding in v.bindings where binding.initializer != nil {
                        for name in Self.names(binding.pattern) { out.append(site(name, binding)) }
                    }
                }
            case .stmt(let stmt):
                out.append(item.with(\.item, .stmt(rewrite(stmt))))
            case .expr(let expr):
                out.append(item.with(\.item, .expr(rewrite(expr))))
                if let name = Self.assigned(expr) { out.append(site(name, expr)) }
            }
        }
        return CodeBlockItemListSyntax(out)
    }

    mutating func rewrite(_ block: CodeBlockSyntax) -> CodeBlockSyntax {
        block.with(\.statements, rewrite(block.statements))
    }

    mutating func rewrite(_ stmt: StmtSyntax) -> StmtSyntax {
        if var s = stmt.as(ForStmtSyntax.self) {
            var body = rewrite(s.body.statements)
            let names = Self.names(s.pattern)
            if !names.isEmpty {
                let hits = names.map { site($0, s.pattern) }
                body = CodeBlockItemListSyntax(hits + Array(body))
            }
            s.body = s.body.with(\.statements, body)
            return StmtSyntax(s)
        }
        if var s = stmt.as(WhileStmtSyntax.self) {
            s.body = rewrite(s.body)
            return StmtSyntax(s)
        }
        if var s = stmt.as(RepeatStmtSyntax.self) {
            s.body = rewrite(s.body)
            return StmtSyntax(s)
        }
        if var s = stmt.as(DoStmtSyntax.self) {
            s.body = rewrite(s.body)
            s.catchClauses = CatchClauseListSyntax(s.catchClauses.map { $0.with(\.body, rewrite($0.body)) })
            return StmtSyntax(s)
        }
        if var s = stmt.as(GuardStmtSyntax.self) {
            s.body = rewrite(s.body)
            return StmtSyntax(s)
        }
        if let e = stmt.as(ExpressionStmtSyntax.self) {
            return StmtSyntax(e.with(\.expression, rewrite(e.expression)))
        }
        return stmt
    }

    mutating func rewrite(_ expr: ExprSyntax) -> ExprSyntax {
        if var e = expr.as(IfExprSyntax.self) {
            e.body = rewrite(e.body)
            if let elseBody = e.elseBody {
                switch elseBody {
                case .codeBlock(let block): e.elseBody = .codeBlock(rewrite(block))
                case .ifExpr(let nested): e.elseBody = .ifExpr(rewrite(ExprSyntax(nested)).as(IfExprSyntax.self) ?? nested)
                }
            }
            return ExprSyntax(e)
        }
        if var e = expr.as(SwitchExprSyntax.self) {
            e.cases = SwitchCaseListSyntax(
                e.cases.map { element in
                    guard case .switchCase(let c) = element else { return element }
                    return .switchCase(c.with(\.statements, rewrite(c.statements)))
                })
            return ExprSyntax(e)
        }
        return expr
    }

    /// The names a pattern binds (`x`, `(a, b)`).
    static func names(_ pattern: PatternSyntax) -> [String] {
        if let p = pattern.as(IdentifierPatternSyntax.self) { return p.identifier.text == "_" ? [] : [p.identifier.text] }
        if let p = pattern.as(TuplePatternSyntax.self) { return p.elements.flatMap { names($0.pattern) } }
        if let p = pattern.as(ValueBindingPatternSyntax.self) { return names(p.pattern) }
        return []
    }

    /// The name an assignment expression (`x = …`, `x += …`) changes.
    static func assigned(_ expr: ExprSyntax) -> String? {
        let elements: [ExprSyntax]
        if let seq = expr.as(SequenceExprSyntax.self) {
            elements = Array(seq.elements)
        } else if let infix = expr.as(InfixOperatorExprSyntax.self) {
            elements = [infix.leftOperand, infix.operator, infix.rightOperand]
        } else {
            return nil
        }
        guard elements.count >= 3, let target = elements[0].as(DeclReferenceExprSyntax.self) else { return nil }
        if elements[1].is(AssignmentExprSyntax.self) { return target.baseName.text }
        if let op = elements[1].as(BinaryOperatorExprSyntax.self), ["+=", "-=", "*=", "/=", "%=", "&=", "|=", "^=", "<<=", ">>="].contains(op.operator.text) {
            return target.baseName.text
        }
        return nil
    }
}

struct Problem: Error, DiagnosticMessage, CustomStringConvertible {
    var description: String { message }
    let message: String
    let node: Syntax
    var diagnosticID: MessageID { MessageID(domain: "ClewMacros", id: "traced") }
    var severity: DiagnosticSeverity { .error }

    init(_ message: String, at node: Syntax) {
        self.message = message
        self.node = node
    }
}

@main
struct ClewMacrosPlugin: CompilerPlugin {
    let providingMacros: [any Macro.Type] = [TracedMacro.self]
}
