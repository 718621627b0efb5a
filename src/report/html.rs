//! HTML building blocks: escaping, tagged figures, tables, and the page's
//! inline CSS (screen and print) and script (hover values). Nothing here
//! refers to anything outside the file: no fonts, images, styles or scripts
//! are fetched when the report is opened.

use std::fmt::Write;

/// Escapes text for HTML content and attribute values.
pub fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            _ => out.push(c),
        }
    }
    out
}

/// A number shown as `text`, tagged with its result.json path and raw value
/// so tests (and scrapers) can check the page against the result.
pub fn fig(key: &str, raw: impl std::fmt::Display, text: &str) -> String {
    format!(
        "<span data-k=\"{}\" data-v=\"{}\">{}</span>",
        esc(key),
        esc(&raw.to_string()),
        esc(text)
    )
}

/// A table: header cells (text) and rows of cells (HTML).
pub fn table(class: &str, head: &[&str], rows: &[Vec<String>]) -> String {
    let mut s = String::new();
    let _ = write!(s, "<table class=\"{class}\"><thead><tr>");
    for h in head {
        let _ = write!(s, "<th>{}</th>", esc(h));
    }
    s.push_str("</tr></thead><tbody>");
    for r in rows {
        s.push_str("<tr>");
        for c in r {
            let _ = write!(s, "<td>{c}</td>");
        }
        s.push_str("</tr>");
    }
    s.push_str("</tbody></table>");
    s
}

/// JSON for an inline `<script type="application/json">`: `<`, `>` and `&`
/// escaped so no value can close the script element.
pub fn script_json(json: &str) -> String {
    json.replace('<', "\\u003c")
        .replace('>', "\\u003e")
        .replace('&', "\\u0026")
}

/// The stylesheet: a readable laptop page, and a print layout (A4/Letter,
/// no hover furniture, charts kept whole on a page).
pub const CSS: &str = r#"
:root{--fg:#111827;--mut:#6b7280;--bd:#e5e7eb;--bg2:#f9fafb;--ok:#15803d;--okb:#dcfce7;--warn:#a16207;--warnb:#fef9c3;--bad:#b91c1c;--badb:#fee2e2}
*{box-sizing:border-box}
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,"Helvetica Neue",Arial,sans-serif;color:var(--fg);margin:0;background:#fff}
main{max-width:1180px;margin:0 auto;padding:18px 22px 40px}
h1{font-size:22px;margin:0 0 2px}h2{font-size:17px;margin:28px 0 8px;padding-bottom:4px;border-bottom:1px solid var(--bd)}
h3{font-size:14px;margin:14px 0 4px}
.sub{color:var(--mut);font-size:13px}
.verdict{margin:12px 0 14px;padding:10px 14px;border-radius:6px;border-left:6px solid;font-size:15px}
.verdict b{font-size:17px;margin-right:8px;letter-spacing:.02em}
.v-ok{background:var(--okb);border-color:var(--ok)}.v-warn{background:var(--warnb);border-color:var(--warn)}.v-bad{background:var(--badb);border-color:var(--bad)}
.cards{display:grid;grid-template-columns:repeat(auto-fill,minmax(205px,1fr));gap:10px}
.card{border:1px solid var(--bd);border-radius:6px;padding:8px 11px;background:#fff;border-top:3px solid #94a3b8}
.card .k{color:var(--mut);font-size:12px;text-transform:uppercase;letter-spacing:.03em}
.card .n{font-size:21px;font-weight:600;font-variant-numeric:tabular-nums;margin:1px 0}
.card .s{font-size:12px;color:#374151}
.card.c-ok{border-top-color:var(--ok)}.card.c-warn{border-top-color:#eab308;background:#fffdf0}.card.c-bad{border-top-color:var(--bad);background:#fff7f7}
table{border-collapse:collapse;margin:6px 0 10px;font-size:13px;font-variant-numeric:tabular-nums}
th,td{border-bottom:1px solid var(--bd);padding:4px 9px;text-align:left;vertical-align:top}
th{background:var(--bg2);font-weight:600;font-size:12px;color:#374151}
td.r,th.r{text-align:right}
.num td{text-align:right}.num td:first-child{text-align:left}
.kv{width:100%;table-layout:fixed}.kv th{width:190px;background:none;color:var(--mut);font-weight:500}
code{font:12px/1.4 ui-monospace,"DejaVu Sans Mono",Menlo,Consolas,monospace;overflow-wrap:anywhere}
.errs{width:100%}.errs td:last-child{overflow-wrap:anywhere}.errs td:nth-child(-n+5){white-space:nowrap}.errs td:nth-child(2),.errs td:nth-child(3){text-align:right}
.pass{color:var(--ok);font-weight:600}.fail{color:var(--bad);font-weight:600}
.chart{margin:2px 0 4px}
.chart h3{margin:10px 0 0}
.note{color:var(--mut);font-size:12px;margin:0 0 2px}
.tg td:nth-child(n+3){white-space:nowrap}.tg{width:100%}.tg small{color:var(--mut)}
svg{display:block;width:100%;height:auto;font-family:inherit}
svg .ax{font-size:11px;fill:#4b5563}svg .lg{font-size:11px;fill:#1f2937}
svg .gl{stroke:#eef0f3;stroke-width:1}svg .tk{stroke:#9ca3af}svg .axl{stroke:#9ca3af;stroke-width:1}
svg .ln{fill:none;stroke-width:1.6;stroke-linejoin:round}svg .da{stroke-dasharray:6 4}
svg .sw{stroke-width:3}svg .sw.da{stroke-width:2}
svg .lim{stroke-width:1.3;stroke-dasharray:7 4}
svg .mk{stroke:#b91c1c;stroke-width:1.2;stroke-dasharray:2 3}svg .mkt{font-size:11px;fill:#b91c1c}
svg .cur{stroke:#111827;stroke-width:1;display:none;pointer-events:none}
.lat{display:grid;grid-template-columns:repeat(auto-fill,minmax(520px,1fr));gap:6px 18px}
pre{background:var(--bg2);border:1px solid var(--bd);padding:10px;font-size:12px;overflow:auto;max-height:520px}
details{margin:6px 0}summary{cursor:pointer;color:#1d4ed8}
.warnline{color:var(--bad)}
#tip{position:fixed;display:none;pointer-events:none;background:rgba(17,24,39,.93);color:#fff;font-size:12px;padding:6px 9px;border-radius:4px;z-index:9;max-width:360px}
#tip i{display:inline-block;width:10px;height:10px;margin-right:5px;border-radius:2px}
footer{margin-top:30px;color:var(--mut);font-size:12px}
@media print{
 @page{size:A4;margin:12mm}
 body{font-size:11px}main{max-width:none;padding:0}
 .chart,.card,table,.lat>div{break-inside:avoid}
 .lat{grid-template-columns:1fr 1fr}
 td{white-space:normal!important}th{white-space:normal}
 td:last-child,td small{overflow-wrap:anywhere}
 .tg,.errs{width:100%;font-size:10px}
 h2{break-after:avoid}
 #tip,svg .cur{display:none!important}
 details{display:block}details>summary{display:none}
 pre{max-height:none;white-space:pre-wrap}
 .verdict,.card,th{-webkit-print-color-adjust:exact;print-color-adjust:exact}
}
"#;

/// Hover values: a cursor across every timeline chart and a box with the
/// hovered chart's values at that moment. Optional: every number is also
/// in the tables, so the page reads the same with scripts off.
pub const JS: &str = r#"
(function(){
var el=document.getElementById('tl-data');if(!el)return;
var D=JSON.parse(el.textContent),tip=document.getElementById('tip');
var svgs=[].slice.call(document.querySelectorAll('svg.tl'));
function fb(v){var u=['B','KiB','MiB','GiB','TiB'],i=0;while(Math.abs(v)>=1024&&i<4){v/=1024;i++}return (i?v.toFixed(2):v.toFixed(0))+' '+u[i]}
function f(v,k){if(v===null||v===undefined)return '\u2013';
 if(k==='rate')return fb(v)+'/s';if(k==='bytes')return fb(v);
 if(k==='ms')return v>=1000?(v/1000).toFixed(2)+' s':v.toFixed(1)+' ms';
 if(k==='pct')return v.toFixed(0)+'%';
 return (v===Math.round(v)||Math.abs(v)>=100)?String(Math.round(v)):v.toFixed(2)}
function ts(t){t=Math.round(t);if(t<60)return t+' s';var h=Math.floor(t/3600),m=Math.floor(t/60)%60,s=t%60;
 return (h?h+':'+(m<10?'0':''):'')+m+':'+(s<10?'0':'')+s}
function centre(i){return D.w===1?i:Math.min(D.span,i*D.w+(D.w-1)/2)}
function hide(){tip.style.display='none';svgs.forEach(function(s){s.querySelector('.cur').style.display='none'})}
function add(p,tag,text,css){var e=document.createElement(tag);if(text!==null)e.textContent=text;if(css)e.style.background=css;p.appendChild(e);return e}
svgs.forEach(function(svg){
 svg.addEventListener('mousemove',function(ev){
  var m=svg.getScreenCTM();if(!m)return;var p=svg.createSVGPoint();p.x=ev.clientX;p.y=ev.clientY;p=p.matrixTransform(m.inverse());
  var l=+svg.getAttribute('data-l'),w=+svg.getAttribute('data-w'),fr=(p.x-l)/w;
  if(fr<0||fr>1){hide();return}
  var t=fr*D.span,i=D.w===1?Math.round(t):Math.floor(t/D.w);i=Math.max(0,Math.min(D.n-1,i));
  var x=l+centre(i)/D.span*w;
  svgs.forEach(function(s){var c=s.querySelector('.cur');c.setAttribute('x1',x);c.setAttribute('x2',x);c.style.display='inline'});
  var ch=D.charts[+svg.getAttribute('data-chart')];tip.textContent='';
  add(tip,'b',D.w===1?'t = '+ts(centre(i)):'t = '+ts(i*D.w)+' \u2013 '+ts(Math.min(D.span,(i+1)*D.w-1)),null);
  ch.forEach(function(se){var d=add(tip,'div','',null);add(d,'i','',se.c);
   var v=se.v[i],txt=se.n+': '+f(v,se.u);if(se.x&&se.x[i]!==null&&se.x[i]!==v)txt+=' (max '+f(se.x[i],se.u)+')';add(d,'span',txt,null)});
  tip.style.display='block';
  var tx=ev.clientX+14,ty=ev.clientY+14;if(tx+tip.offsetWidth>innerWidth-8)tx=ev.clientX-tip.offsetWidth-14;if(ty+tip.offsetHeight>innerHeight-8)ty=ev.clientY-tip.offsetHeight-14;
  tip.style.left=tx+'px';tip.style.top=ty+'px';
 });
 svg.addEventListener('mouseleave',hide);
});
})();
"#;
