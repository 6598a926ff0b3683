/// The dashboard's Mustache templates (HTML-escaped by default; data for charts travels as JSON in
/// `<script type="application/json">` blocks, read by /static/clew.js, so the page has no inline script).
enum Templates {
    static let all: [String: String] = [
        "layout": layout, "login": login, "health": health, "dags": dags, "dag": dag, "run": run, "chunks": chunks,
        "lineage": lineage, "search": search, "replay": replay, "integrity": integrity, "error": error, "sla": sla, "code": code,
        "variables": variables, "connections": connections, "setting": setting,
    ]

    static let layout = """
    <!doctype html>
    <html lang="en"><head><meta charset="utf-8"><title>{{title}} · Clew</title>
    <link rel="icon" href="data:,"><link rel="stylesheet" href="/static/clew.css"></head>
    <body data-page="{{page}}">
    <header><a class="brand" href="/">Clew</a>
    <nav><a href="/">Health</a><a href="/dags">DAGs</a><a href="/chunks">Chunks</a><a href="/lineage">Lineage</a><a href="/search">Search</a><a href="/sla">SLAs</a><a href="/variables">Variables</a><a href="/connections">Connections</a><a href="/integrity">Integrity</a></nav>
    {{#who}}<form class="who" method="post" action="/logout"><span>{{name}} · {{role}}</span> <button type="submit">Log out</button></form>{{/who}}
    </header>
    <main><h1>{{title}}</h1>
    {{$body}}{{/body}}
    </main>
    {{#charts}}<script src="/static/chart.js"></script>{{/charts}}
    {{#graphs}}<script src="/static/dagre.js"></script>{{/graphs}}
    <script src="/static/clew.js"></script>
    </body></html>
    """

    static let login = """
    {{<layout}}{{$body}}
    {{#failed}}<p class="error" id="login-error">That token is unknown or revoked.</p>{{/failed}}
    <form method="post" action="/login" id="login-form">
    <input type="hidden" name="next" value="{{next}}">
    <label>API token <input type="password" name="token" autocomplete="off" required></label>
    <button type="submit">Log in</button></form>
    <p class="hint">Mint one with <code>clew token create --name NAME --role viewer</code>.</p>
    {{/body}}{{/layout}}
    """

    static let health = """
    {{<layout}}{{$body}}
    <section class="cards">
    {{#windows}}<div class="card" id="window-{{id}}"><h2>{{label}}</h2>
    <p><span class="n ok" data-count="succeeded">{{succeeded}}</span> succeeded · <span class="n bad" data-count="failed">{{failed}}</span> failed · <span class="n" data-count="other">{{other}}</span> other</p></div>{{/windows}}
    </section>
    <h2>Runs per day (last 7 days)</h2>
    <div class="chart"><canvas id="health-chart" height="220"></canvas></div>
    <script type="application/json" id="health-data">{{{healthJSON}}}</script>
    <h2>Recent runs</h2>
    <table id="recent-runs"><thead><tr><th>DAG</th><th>Run</th><th>State</th><th>Queued</th><th>Tasks</th></tr></thead><tbody>
    {{#recent}}<tr><td><a href="/dags/{{dagPath}}">{{dag}}</a></td><td><a href="/runs/{{dagPath}}/{{runPath}}">{{run}}</a></td><td><span class="state {{state}}">{{state}}</span></td><td>{{queued}}</td><td>{{tasks}}</td></tr>{{/recent}}
    </tbody></table>
    {{/body}}{{/layout}}
    """

    static let dags = """
    {{<layout}}{{$body}}
    <table id="dag-list"><thead><tr><th>DAG</th><th>Version</th><th>Tasks</th><th>Schedule</th><th>Origin</th><th>Last run</th><th>State</th></tr></thead><tbody>
    {{#dags}}<tr><td><a href="/dags/{{path}}">{{name}}</a></td><td><code>{{version}}</code></td><td>{{tasks}}</td><td>{{schedule}}</td><td>{{origin}}</td><td>{{#lastRun}}<a href="/runs/{{path}}/{{runPath}}">{{run}}</a>{{/lastRun}}</td><td>{{#lastRun}}<span class="state {{state}}">{{state}}</span>{{/lastRun}}</td></tr>{{/dags}}
    </tbody></table>
    {{/body}}{{/layout}}
    """

    static let dag = """
    {{<layout}}{{$body}}
    <p>{{description}} · version <code>{{version}}</code> · {{taskCount}} tasks · schedule <span id="dag-schedule">{{schedule}}</span> · from {{origin}}</p>
    {{#canTrigger}}<form method="post" action="/dags/{{path}}/trigger" id="trigger-form"><button type="submit">Trigger a run</button></form>{{/canTrigger}}
    <p><a href="/dags/{{path}}/code" id="code-link">Code</a> of this DAG at each version it ran.</p>
    <h2>Grid</h2>
    {{#hasGrid}}<table class="runs-grid" id="dag-grid"><thead><tr><th></th>{{#gridRuns}}<th class="run" title="{{run}} ({{state}})"><a href="/runs/{{dagPath}}/{{runPath}}">{{label}}</a></th>{{/gridRuns}}</tr>
    <tr><th>run</th>{{#gridRuns}}<td><a class="sq {{state}}" href="/runs/{{dagPath}}/{{runPath}}" title="{{run}}: {{state}}" data-run="{{run}}"></a></td>{{/gridRuns}}</tr></thead><tbody>
    {{#gridTasks}}<tr data-task="{{task}}"><th>{{task}}</th>{{#cells}}<td><a class="sq {{cls}}" href="/runs/{{dagPath}}/{{runPath}}" title="{{task}} in {{run}}: {{state}}" data-state="{{state}}"></a></td>{{/cells}}</tr>{{/gridTasks}}
    </tbody></table>
    <p class="hint">The last {{gridCount}} run(s), oldest on the left; a square per task and run, coloured by state.</p>{{/hasGrid}}
    <h2>Runs</h2>
    <table id="dag-runs"><thead><tr><th>Run</th><th>State</th><th>Queued</th><th>Trigger</th></tr></thead><tbody>
    {{#runs}}<tr><td><a href="/runs/{{dagPath}}/{{runPath}}">{{run}}</a></td><td><span class="state {{state}}">{{state}}</span></td><td>{{queued}}</td><td>{{trigger}}</td></tr>{{/runs}}
    </tbody></table>
    {{/body}}{{/layout}}
    """

    static let run = """
    {{<layout}}{{$body}}
    <p id="run-summary"><span class="state {{state}}" id="run-state">{{state}}</span> · DAG <a href="/dags/{{dagPath}}">{{dag}}</a> · queued {{queued}} · ended {{ended}} · trigger {{trigger}}
    · <a href="/replay/{{dagPath}}/{{runPath}}">replay inspector</a> · <a href="/lineage?node=run:{{dagPath}}/{{runPath}}">lineage</a>
    · <a href="/dags/{{dagPath}}/code?version={{version}}" id="run-code">code it ran</a></p>
    {{#params.0}}<p>Params: {{#params}}<code>{{name}}={{value}}</code> {{/params}}</p>{{/params.0}}
    {{#active}}<form method="post" action="/runs/{{dagPath}}/{{runPath}}/cancel" id="cancel-form"><button type="submit">Cancel run</button></form>{{/active}}
    <h2>Graph</h2><div id="run-graph" class="graph"></div>
    <script type="application/json" id="graph-data">{{{graphJSON}}}</script>
    <h2>Gantt</h2><div class="chart"><canvas id="gantt-chart" height="{{ganttHeight}}"></canvas></div>
    <script type="application/json" id="gantt-data">{{{ganttJSON}}}</script>
    <h2>Task durations over past runs</h2><div class="chart"><canvas id="durations-chart" height="240"></canvas></div>
    <script type="application/json" id="durations-data">{{{durationsJSON}}}</script>
    <h2>Tasks</h2>
    <table id="run-tasks"><thead><tr><th>Task</th><th>State</th><th>Attempts</th><th>Duration</th><th>Error</th>{{#canAct}}<th>Actions</th>{{/canAct}}</tr></thead><tbody>
    {{#tasks}}<tr data-task="{{task}}"><td>{{task}}</td><td><span class="state {{state}}">{{state}}</span></td><td>{{attempts}}</td><td>{{duration}}</td><td class="err">{{error}}{{#reason}} <span class="reason">{{reason}}</span>{{/reason}}</td>
    {{#canAct}}<td><form method="post" action="/runs/{{dagPath}}/{{runPath}}/tasks/{{taskPath}}/action" class="task-action" id="action-{{task}}">
    <input name="reason" placeholder="why" size="14" required> <button type="submit" name="action" value="clear" title="run it again with every task after it">Clear</button>
    <button type="submit" name="action" value="success">Mark success</button> <button type="submit" name="action" value="failed">Mark failed</button></form></td>{{/canAct}}</tr>{{/tasks}}
    </tbody></table>
    {{/body}}{{/layout}}
    """

    static let chunks = """
    {{<layout}}{{$body}}
    <form method="get" action="/chunks"><label>Dataset <select name="dataset">{{#datasets}}<option value="{{name}}" {{#selected}}selected{{/selected}}>{{name}} ({{chunks}})</option>{{/datasets}}</select></label> <button type="submit">Show</button></form>
    {{#dataset}}
    <p id="chunk-counts">{{#counts}}<span class="state {{status}}">{{status}} {{count}}</span> {{/counts}}</p>
    <div class="grid" id="chunk-grid">{{#cells}}<a class="cell {{status}}" href="/lineage?node=chunk:{{nodePath}}" title="{{key}}: {{status}}" data-key="{{key}}" data-status="{{status}}"></a>{{/cells}}</div>
    <p class="hint">Showing {{shown}} chunk(s), oldest key first; click one for its lineage.</p>
    {{/dataset}}
    {{/body}}{{/layout}}
    """

    static let lineage = """
    {{<layout}}{{$body}}
    <form method="get" action="/lineage"><label>Node <input name="node" value="{{node}}" size="60" placeholder="run, chunk DATASET/KEY, dataset:NAME, digest…"></label> <button type="submit">Explore</button></form>
    {{#center}}
    <p>Centre: <code id="lineage-center">{{center}}</code> · up {{up}} · down {{down}}
    · <a id="expand-up" href="/lineage?node={{centerQ}}&amp;up={{upMore}}&amp;down={{down}}">expand up</a>
    · <a id="expand-down" href="/lineage?node={{centerQ}}&amp;up={{up}}&amp;down={{downMore}}">expand down</a></p>
    <div id="lineage-graph" class="graph"></div>
    <script type="application/json" id="graph-data">{{{graphJSON}}}</script>
    <table id="lineage-edges"><thead><tr><th>From</th><th>Edge</th><th>To</th><th>Seq</th></tr></thead><tbody>
    {{#edges}}<tr><td><a href="/lineage?node={{fromQ}}">{{from}}</a></td><td>{{kind}}</td><td><a href="/lineage?node={{toQ}}">{{to}}</a></td><td>{{seq}}</td></tr>{{/edges}}
    </tbody></table>
    {{/center}}
    {{/body}}{{/layout}}
    """

    static let search = """
    {{<layout}}{{$body}}
    <form method="get" action="/search" id="value-search"><label>Name <input name="name" value="{{name}}" placeholder="factor, output, output.total…"></label>
    <label>Condition <input name="cond" value="{{cond}}" placeholder="=0.0001, 1..5, >=10, ^=prefix"></label> <button type="submit">Search values</button></form>
    {{#searched}}<p id="hit-count">{{count}} hit(s)</p>
    <table id="value-hits"><thead><tr><th>DAG</th><th>Run</th><th>Task</th><th>Attempt</th><th>Step</th><th>Name</th><th>Value</th></tr></thead><tbody>
    {{#hits}}<tr><td>{{dag}}</td><td><a href="/runs/{{dagPath}}/{{runPath}}">{{run}}</a></td><td>{{task}}</td><td>{{attempt}}</td><td>{{step}}</td><td>{{name}}</td><td><code>{{value}}</code></td></tr>{{/hits}}
    </tbody></table>{{/searched}}
    {{/body}}{{/layout}}
    """

    static let replay = """
    {{<layout}}{{$body}}
    <p>Run <a href="/runs/{{dagPath}}/{{runPath}}">{{run}}</a> of {{dag}} · {{steps}} step(s) · position <span id="position">{{position}}</span></p>
    <nav class="stepper"><a id="first" href="?i=0">⏮ first</a> <a id="prev" href="?i={{prev}}">◀ previous</a> <a id="next" href="?i={{next}}">next ▶</a> <a id="last" href="?i={{last}}">last ⏭</a></nav>
    {{#current}}<h2 id="step-title">{{attempt}} · step {{step}}: <code>{{name}}</code> ({{kind}}){{#source}} at <code id="step-source">{{source}}</code>{{/source}}{{#count}}, last of {{count}} runs{{/count}}</h2>
    <pre id="step-value">{{value}}</pre>{{/current}}
    {{^current}}<p id="step-title">No recorded steps.</p>{{/current}}
    <h2>In scope</h2>
    <table id="scope"><thead><tr><th>Name</th><th>Value</th><th>From</th></tr></thead><tbody>
    {{#scope}}<tr><td><code>{{name}}</code></td><td><code>{{value}}</code></td><td>{{origin}}</td></tr>{{/scope}}
    </tbody></table>
    <h2>Attempts</h2><ul id="attempts">{{#attempts}}<li><a href="?i={{start}}">{{id}}</a> {{outcome}}</li>{{/attempts}}</ul>
    {{/body}}{{/layout}}
    """

    static let integrity = """
    {{<layout}}{{$body}}
    <p id="ledger-stats">Ledger <code>{{ledger}}</code> · {{events}} events in {{streams}} streams · root <code>{{root}}</code></p>
    <h2>Last verify</h2>
    {{#verify}}<p id="verify-result" class="{{status}}">{{status}}: {{summary}} ({{at}}, {{millis}} ms)</p>{{/verify}}
    {{^verify}}<p id="verify-result">Not verified since the server started.</p>{{/verify}}
    <form method="post" action="/integrity/verify" id="verify-form"><button type="submit">Verify now</button></form>
    <h2>Checkpoints</h2>
    <table id="checkpoints"><thead><tr><th>Tree size</th><th>Root</th><th>Time</th><th>Key</th></tr></thead><tbody>
    {{#checkpoints}}<tr><td>{{size}}</td><td><code>{{root}}</code></td><td>{{time}}</td><td><code>{{key}}</code></td></tr>{{/checkpoints}}
    </tbody></table>
    <h2>Views</h2>
    <table id="views"><thead><tr><th>View</th><th>Checkpoint</th></tr></thead><tbody>
    {{#views}}<tr><td>{{name}}</td><td>{{checkpoint}}</td></tr>{{/views}}
    </tbody></table>
    {{/body}}{{/layout}}
    """

    static let sla = """
    {{<layout}}{{$body}}
    <form method="get" action="/sla"><label>DAG <input name="dag" value="{{dag}}" placeholder="every DAG"></label> <button type="submit">Show</button></form>
    <h2>SLA misses</h2>
    <table id="sla-misses"><thead><tr><th>Deadline</th><th>DAG</th><th>Run</th><th>Missed by</th><th>SLA</th><th>Late when seen</th><th>Late in the end</th><th>Seen by</th></tr></thead><tbody>
    {{#misses}}<tr data-seq="{{seq}}"><td>{{deadline}}</td><td><a href="/dags/{{dagPath}}">{{dag}}</a></td><td><a href="/runs/{{dagPath}}/{{runPath}}">{{run}}</a></td><td>{{what}}</td><td>{{sla}}</td><td>{{lateSeen}}</td><td>{{lateEnd}}</td><td>{{seenBy}}</td></tr>{{/misses}}
    </tbody></table>
    {{^misses}}<p class="hint" id="no-misses">No SLA misses recorded. Set <code>sla:</code> on a DAG or task of a pipeline file.</p>{{/misses}}
    <h2>Alerts sent</h2>
    <p id="alert-defaults">Defaults: webhooks {{webhooks}} · e-mail {{emails}} · on {{rules}}</p>
    <table id="alert-deliveries"><thead><tr><th>Time</th><th>Rule</th><th>DAG</th><th>Channel</th><th>Target</th><th>Outcome</th><th>Subject</th></tr></thead><tbody>
    {{#alerts}}<tr data-seq="{{seq}}"><td>{{time}}</td><td>{{rule}}</td><td>{{dag}}</td><td>{{channel}}</td><td>{{target}}</td><td><span class="state {{outcome}}">{{outcome}}</span> after {{attempts}}{{#error}} ({{error}}){{/error}}</td><td>{{subject}}</td></tr>{{/alerts}}
    </tbody></table>
    <h2>Pools</h2>
    <table id="pools"><thead><tr><th>Pool</th><th>Slots</th><th>In use</th><th>Waiting, in the order they get slots</th></tr></thead><tbody>
    {{#pools}}<tr><td>{{pool}}</td><td>{{slots}}</td><td>{{used}}</td><td>{{waiting}}</td></tr>{{/pools}}
    </tbody></table>
    {{/body}}{{/layout}}
    """

    static let code = """
    {{<layout}}{{$body}}
    <p>DAG <a href="/dags/{{path}}">{{dag}}</a> · version <code id="code-version">{{version}}</code> registered {{registered}} · from {{origin}}</p>
    <form method="get" action="/dags/{{path}}/code"><label>Version <select name="version">{{#versions}}<option value="{{version}}" {{#selected}}selected{{/selected}}>{{version}} ({{time}})</option>{{/versions}}</select></label> <button type="submit">Show</button></form>
    {{#sources.0}}<h2>Files</h2>{{/sources.0}}
    {{#sources}}<h3 class="source-path"><code>{{path}}</code> <span class="hint">sha256 {{sha}} · {{bytes}} bytes</span></h3>
    <pre class="source" data-path="{{path}}">{{text}}</pre>{{/sources}}
    {{^sources.0}}<p class="hint" id="no-sources">Defined in Swift at {{origin}}; its definition as recorded:</p>{{/sources.0}}
    <h2>Definition</h2>
    <pre id="code-definition">{{definition}}</pre>
    {{/body}}{{/layout}}
    """

    static let variables = """
    {{<layout}}{{$body}}
    <table id="variable-list"><thead><tr><th>Key</th><th>Value</th><th>Description</th><th>Set by</th><th>At</th>{{#canEdit}}<th></th>{{/canEdit}}</tr></thead><tbody>
    {{#variables}}<tr data-key="{{key}}"><td><a href="/variables/{{keyPath}}">{{key}}</a></td><td><code>{{value}}</code>{{#secret}} <span class="hint">secret</span>{{/secret}}</td><td>{{description}}</td><td>{{by}}</td><td>{{at}}</td>
    {{#canEdit}}<td><form method="post" action="/variables/{{keyPath}}/delete" class="delete-form"><input name="reason" placeholder="why" size="10"> <button type="submit">Delete</button></form></td>{{/canEdit}}</tr>{{/variables}}
    </tbody></table>
    {{^variables}}<p class="hint" id="no-variables">No Variables are set.</p>{{/variables}}
    {{#canEdit}}<h2>Set a Variable</h2>
    <form method="post" action="/variables" id="variable-form"><label>Key <input name="key" required></label> <label>Value <input name="value"></label>
    <label>or reference <input name="reference" placeholder="env:NAME or file:/path"></label> <label>Why <input name="reason"></label> <button type="submit">Set</button></form>
    <p class="hint">A secret-looking key (password, token, secret …) takes only a reference, read where the task runs and never recorded.</p>{{/canEdit}}
    {{/body}}{{/layout}}
    """

    static let connections = """
    {{<layout}}{{$body}}
    <table id="connection-list"><thead><tr><th>Id</th><th>Type</th><th>Hosts</th><th>Port</th><th>Schema</th><th>Login</th><th>Password</th><th>Extra</th><th>Set by</th><th>At</th>{{#canEdit}}<th></th>{{/canEdit}}</tr></thead><tbody>
    {{#connections}}<tr data-id="{{id}}"><td><a href="/connections/{{idPath}}">{{id}}</a></td><td>{{type}}</td><td>{{hosts}}</td><td>{{port}}</td><td>{{schema}}</td><td>{{login}}</td><td><code>{{password}}</code></td><td>{{extra}}</td><td>{{by}}</td><td>{{at}}</td>
    {{#canEdit}}<td><form method="post" action="/connections/{{idPath}}/delete" class="delete-form"><input name="reason" placeholder="why" size="10"> <button type="submit">Delete</button></form></td>{{/canEdit}}</tr>{{/connections}}
    </tbody></table>
    {{^connections}}<p class="hint" id="no-connections">No Connections are set.</p>{{/connections}}
    {{#canEdit}}<h2>Set a Connection</h2>
    <form method="post" action="/connections" id="connection-form"><label>Id <input name="id" required></label> <label>Type <input name="type" size="8"></label>
    <label>Hosts <input name="hosts" placeholder="db1, db2" required></label> <label>Port <input name="port" size="5"></label> <label>Schema <input name="schema" size="8"></label>
    <label>Login <input name="login" size="8"></label> <label>Password reference <input name="password_ref" placeholder="env:NAME or file:/path"></label>
    <label>Why <input name="reason"></label> <button type="submit">Set</button></form>
    <p class="hint">A password is only ever a reference, read where the task runs; the host a task is given is recorded with its run.</p>{{/canEdit}}
    {{/body}}{{/layout}}
    """

    static let setting = """
    {{<layout}}{{$body}}
    <p><a href="/{{kind}}">All {{kind}}</a></p>
    <table id="setting-history"><thead><tr><th>Seq</th><th>Time</th><th>Change</th><th>By</th><th>What</th><th>Why</th></tr></thead><tbody>
    {{#history}}<tr><td>{{seq}}</td><td>{{time}}</td><td>{{action}}</td><td>{{by}}</td><td><code>{{what}}</code></td><td>{{reason}}</td></tr>{{/history}}
    </tbody></table>
    {{/body}}{{/layout}}
    """

    static let error = """
    {{<layout}}{{$body}}<p class="error" id="error-message">{{message}}</p>{{/body}}{{/layout}}
    """
}
