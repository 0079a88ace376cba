// The dashboard: reads the KPI API with the user's bearer token and draws the answers with ECharts.
//
// The token comes from the sign-in box or the URL fragment (#token=…, which never reaches a server or its
// logs) and is kept in this tab's sessionStorage only. The rest of the fragment holds what the user picked
// (#branch=b1&month=2026-03&span=3&lang=en), so a view can be bookmarked without the token.
'use strict';

(() => {
  const TEXT = {
    'zh-CN': {
      title: '数据决策驾驶舱',
      language: 'English',
      branch: '门店',
      wholeChain: '全连锁',
      month: '截至月份',
      span: '期间',
      span1: '当月',
      span3: '近 3 个月',
      span12: '近 12 个月',
      signInTitle: '登录驾驶舱',
      signInHelp: '粘贴访问令牌（开发环境可用 pitlane token 生成）。令牌只保存在当前标签页。',
      signIn: '登录',
      signOut: '退出',
      loading: '加载中…',
      expired: '令牌无效或已过期，请重新登录。',
      forbidden: '此令牌无权查看所选门店的数据。',
      failed: '加载失败：',
      headline: '核心指标',
      trends: '月度趋势',
      activity: '客户活跃度',
      staff: '员工排行榜',
      services: '热门服务项目',
      campaigns: '营销活动 ROI',
      reminders: '提醒效果',
      declined: '拒绝项目挽回',
      cohorts: '客户留存（按首次到店月份）',
      cohortsHelp: '每行是首次到店在该月的客户；第 k 列是其中在 k 个月后的那个月再次到店的比例。',
      returnRate: '回头率',
      newCustomers: '新客户',
      spendPerYear: '客户年均消费',
      ltv: '客户终身价值',
      nps: '净推荐值 NPS',
      conversion: '预约转化率',
      daysBetween: '平均回厂间隔',
      daysUnit: '天',
      years: '年',
      answers: '份回答',
      responseRate: '回复率',
      windowDays: '近 {n} 天',
      active: '活跃',
      churned: '流失',
      advisor: '顾问',
      technician: '技师',
      staffMember: '员工',
      role: '岗位',
      workOrders: '工单',
      revenue: '营收',
      approvalRate: '增项通过率',
      campaign: '活动',
      recipients: '触达人数',
      orders: '归因订单',
      cost: '成本',
      attributedRevenue: '归因收入',
      incrementalRevenue: '增量收入（对照组）',
      noControlGroup: '未设对照组',
      roi: 'ROI',
      followedByBooking: '之后预约',
      followedByVisit: '之后到店',
      notFollowed: '未响应',
      recoveredApproved: '后来同意',
      recoveredPerformed: '后来施工',
      notRecovered: '未挽回',
      byFen: '按金额：已挽回 {recovered}，共 {declined}（{rate}）',
      monthsLater: '{k} 个月后',
      asOf: '数据截至',
      noData: '暂无数据',
    },
    en: {
      title: 'Decision dashboard',
      language: '中文',
      branch: 'Branch',
      wholeChain: 'Whole chain',
      month: 'Up to month',
      span: 'Period',
      span1: 'That month',
      span3: 'Last 3 months',
      span12: 'Last 12 months',
      signInTitle: 'Sign in to the dashboard',
      signInHelp: 'Paste your access token (in development, mint one with pitlane token). It is kept in this tab only.',
      signIn: 'Sign in',
      signOut: 'Sign out',
      loading: 'Loading…',
      expired: 'The token is invalid or has expired: sign in again.',
      forbidden: 'This token may not read the chosen branch’s figures.',
      failed: 'Could not load: ',
      headline: 'Headline KPIs',
      trends: 'Monthly trends',
      activity: 'Customer activity',
      staff: 'Staff leaderboard',
      services: 'Popular services',
      campaigns: 'Campaign ROI',
      reminders: 'Reminder effectiveness',
      declined: 'Declined-work recovery',
      cohorts: 'Retention by month of first visit',
      cohortsHelp: 'Each row: the customers whose first visit fell in that month; column k: the share of them who came back in the month k months later.',
      returnRate: 'Return rate',
      newCustomers: 'New customers',
      spendPerYear: 'Spend per customer per year',
      ltv: 'Lifetime value',
      nps: 'NPS',
      conversion: 'Appointment conversion',
      daysBetween: 'Time between visits',
      daysUnit: 'days',
      years: 'years',
      answers: 'answers',
      responseRate: 'response rate',
      windowDays: 'Last {n} days',
      active: 'Active',
      churned: 'Churned',
      advisor: 'Advisor',
      technician: 'Technician',
      staffMember: 'Staff',
      role: 'Role',
      workOrders: 'Work orders',
      revenue: 'Revenue',
      approvalRate: 'Add-on approval',
      campaign: 'Campaign',
      recipients: 'Recipients',
      orders: 'Attributed orders',
      cost: 'Cost',
      attributedRevenue: 'Attributed revenue',
      incrementalRevenue: 'Incremental revenue (vs control)',
      noControlGroup: 'no control group',
      roi: 'ROI',
      followedByBooking: 'Followed by a booking',
      followedByVisit: 'Followed by a visit',
      notFollowed: 'Not followed',
      recoveredApproved: 'Approved later',
      recoveredPerformed: 'Performed later',
      notRecovered: 'Not recovered',
      byFen: 'By amount: {recovered} recovered of {declined} ({rate})',
      monthsLater: '+{k} months',
      asOf: 'Data as of',
      noData: 'No data',
    },
  };
  const TOKEN_KEY = 'pitlane.dashboard.token';
  const API_BASE = document.querySelector('meta[name="pitlane-api-base"]').content;
  const TREND_MONTHS = 12;
  const TOP_ROWS = 10;
  const FONT = 'system-ui, "Noto Sans CJK SC", "PingFang SC", "Microsoft YaHei", sans-serif';

  const state = { lang: 'zh-CN', token: null, branches: [], chainWide: false, branch: '', month: '', span: 1 };
  let answers = null; // the answers drawn last: a language switch draws them again without asking anew
  let charts = [];
  let loads = 0; // numbers each refresh: only the latest one's answers are drawn

  const $ = (selector) => document.querySelector(selector);
  const $$ = (selector) => Array.from(document.querySelectorAll(selector));
  const t = (key, values = {}) =>
    TEXT[state.lang][key].replace(/\{(\w+)\}/g, (_, name) => String(values[name]));

  // ---- state: the fragment and the session ----------------------------------------------------------------

  function readFragment() {
    const fragment = new URLSearchParams(location.hash.slice(1));
    if (fragment.get('token')) sessionStorage.setItem(TOKEN_KEY, fragment.get('token'));
    state.token = sessionStorage.getItem(TOKEN_KEY);
    state.lang = fragment.get('lang') === 'en' ? 'en' : 'zh-CN';
    state.branch = fragment.get('branch') || '';
    state.month = /^\d{4}-\d{2}$/.test(fragment.get('month') || '') ? fragment.get('month') : thisMonth();
    state.span = ['1', '3', '12'].includes(fragment.get('span')) ? Number(fragment.get('span')) : 1;
    writeFragment(); // drops the token from the address bar and the history
  }

  function writeFragment() {
    const fragment = new URLSearchParams({ month: state.month, span: String(state.span), lang: state.lang });
    if (state.branch) fragment.set('branch', state.branch);
    history.replaceState(null, '', `${location.pathname}${location.search}#${fragment}`);
  }

  function thisMonth() {
    const now = new Date();
    return `${now.getFullYear()}-${String(now.getMonth() + 1).padStart(2, '0')}`;
  }

  // ---- periods: [from, to) of whole months, as the API takes them -------------------------------------------

  function monthStart(month, offset) {
    const [year, number] = month.split('-').map(Number);
    const date = new Date(Date.UTC(year, number - 1 + offset, 1));
    return date.toISOString().slice(0, 10);
  }

  const monthsEndingWith = (month, count) => ({ from: monthStart(month, 1 - count), to: monthStart(month, 1) });

  function lastDay(to) {
    const date = new Date(`${to}T00:00:00Z`);
    date.setUTCDate(date.getUTCDate() - 1);
    return date.toISOString().slice(0, 10);
  }

  // ---- the API ----------------------------------------------------------------------------------------------

  class ApiError extends Error {
    constructor(status, detail) {
      super(detail);
      this.status = status;
    }
  }

  async function get(path, params = {}) {
    const query = new URLSearchParams(params);
    if (state.branch) query.set('branch_id', state.branch);
    const response = await fetch(`${API_BASE}${path}?${query}`, {
      headers: { Authorization: `Bearer ${state.token}`, Accept: 'application/json' },
      cache: 'no-store',
    });
    if (!response.ok) {
      const problem = await response.json().catch(() => ({}));
      throw new ApiError(response.status, problem.detail || response.statusText);
    }
    return response.json();
  }

  async function loadAnswers() {
    const period = monthsEndingWith(state.month, state.span);
    const months = monthsEndingWith(state.month, TREND_MONTHS);
    const [headline, trends, staff, services, campaigns, reminders, declined, cohorts] = await Promise.all([
      get('/v1/kpis', period),
      get('/v1/kpis/trends', months),
      get('/v1/kpis/staff-leaderboard', period),
      get('/v1/kpis/popular-services', period),
      get('/v1/kpis/campaign-roi', period),
      get('/v1/kpis/reminder-effectiveness', period),
      get('/v1/kpis/declined-work-recovery', period),
      get('/v1/kpis/cohorts', months),
    ]);
    return { headline, trends, staff, services, campaigns, reminders, declined, cohorts };
  }

  // ---- formatting -------------------------------------------------------------------------------------------

  const locale = () => (state.lang === 'en' ? 'en-GB' : 'zh-CN');
  const percentOf = (value) => (value === null ? null : Number(value) * 100);
  const percent = (value) => (value === null ? '—' : `${percentOf(value).toFixed(1)}%`);
  const yuan = (fen) =>
    fen === null || fen === undefined
      ? '—'
      : new Intl.NumberFormat(locale(), { style: 'currency', currency: 'CNY', maximumFractionDigits: 2 }).format(fen / 100);
  const number = (value) => (value === null ? '—' : new Intl.NumberFormat(locale()).format(Number(value)));
  const branchName = (branchId) => branchId || t('wholeChain');

  function asOf(answer) {
    if (!answer.data_as_of) return `${t('asOf')}: —`;
    const format = new Intl.DateTimeFormat(locale(), {
      timeZone: answer.period.timezone,
      dateStyle: 'medium',
      timeStyle: 'short',
    });
    return `${t('asOf')}: ${format.format(new Date(answer.data_as_of))} (${answer.period.timezone})`;
  }

  function scopeOf(answer) {
    const period = answer.period;
    return `${period.from} – ${lastDay(period.to)} · ${branchName(answer.branch_id)} · ${period.timezone}`;
  }

  // ---- drawing ----------------------------------------------------------------------------------------------

  function applyLanguage() {
    document.documentElement.lang = state.lang;
    document.title = `${t('title')} · Pitlane`;
    for (const element of $$('[data-text]')) element.textContent = t(element.dataset.text);
    const switcher = $('#language');
    switcher.textContent = t('language');
    switcher.lang = state.lang === 'en' ? 'zh-CN' : 'en';
    fillBranchPicker();
  }

  const branchChoices = () => (state.chainWide ? ['', ...state.branches] : state.branches);

  function fillBranchPicker() {
    const picker = $('#branch');
    picker.replaceChildren();
    for (const branchId of branchChoices()) picker.add(new Option(branchName(branchId), branchId));
    picker.value = state.branch;
  }

  // Tooltips drawn on the canvas (richText): ECharts' HTML tooltips carry inline styles, which the page's
  // Content-Security-Policy refuses.
  function chart(name, option) {
    const element = $(`[data-chart="${name}"]`);
    const instance = echarts.init(element, null, { renderer: 'canvas', locale: state.lang === 'en' ? 'EN' : 'ZH' });
    const empty = option.series.every((series) => series.data.every((value) => value === null));
    instance.setOption({
      animation: false,
      textStyle: { fontFamily: FONT },
      tooltip: { trigger: 'axis', renderMode: 'richText' },
      grid: { left: 8, right: 16, top: 32, bottom: 8, containLabel: true },
      graphic: empty ? { type: 'text', left: 'center', top: 'middle', style: { text: t('noData'), fill: '#999', fontSize: 14 } } : [],
      ...option,
    });
    charts.push(instance);
  }

  // Horizontal bars: room on the right for the value axis's last label.
  const BARS_GRID = { left: 8, right: 40, top: 16, bottom: 8, containLabel: true };
  const axisLabels = (labels) => ({ type: 'category', data: labels });
  const valueAxis = (formatter) => ({ type: 'value', axisLabel: formatter ? { formatter } : {} });

  function drawHeadline({ headline }) {
    const rate = (element, view) => {
      $(element).textContent = percent(view.value);
      $(`${element}-of`).textContent = `${view.numerator} / ${view.denominator}`;
    };
    rate('#tile-return-rate', headline.return_rate);
    rate('#tile-conversion', headline.appointment_conversion);
    $('#tile-new').textContent = number(headline.new_customers);
    $('#tile-spend').textContent = yuan(headline.spend_per_year_fen);
    $('#tile-ltv').textContent = yuan(headline.ltv_fen);
    $('#tile-ltv-of').textContent =
      headline.mean_lifetime_years === null ? '' : `${yuan(headline.spend_per_year_fen)} × ${headline.mean_lifetime_years} ${t('years')}`;
    $('#tile-nps').textContent = headline.nps === null ? '—' : headline.nps;
    $('#tile-nps-of').textContent = `${headline.nps_answers} ${t('answers')} · ${t('responseRate')} ${percent(headline.nps_response_rate.value)}`;
    $('#tile-days').textContent =
      headline.mean_days_between_visits === null ? '—' : `${headline.mean_days_between_visits} ${t('daysUnit')}`;

    const windows = headline.activity;
    chart('activity', {
      legend: { top: 0 },
      xAxis: axisLabels(windows.map((window) => t('windowDays', { n: window.days }))),
      yAxis: valueAxis(),
      series: [
        { name: t('active'), type: 'bar', data: windows.map((window) => window.active), label: { show: true, position: 'top' } },
        { name: t('churned'), type: 'bar', data: windows.map((window) => window.churned), label: { show: true, position: 'top' } },
      ],
    });
  }

  function drawTrends({ trends }) {
    const months = trends.months.map((month) => month.month.slice(0, 7));
    const line = (name, values, formatter) =>
      chart(name, {
        grid: { left: 8, right: 16, top: 16, bottom: 8, containLabel: true },
        xAxis: axisLabels(months),
        yAxis: valueAxis(formatter),
        series: [{ type: 'line', data: values, connectNulls: false, symbolSize: 6 }],
      });
    line('trend-return-rate', trends.months.map((month) => percentOf(month.return_rate)), '{value}%');
    line('trend-nps', trends.months.map((month) => (month.nps === null ? null : Number(month.nps))));
    line('trend-spend', trends.months.map((month) => (month.spend_per_year_fen === null ? null : month.spend_per_year_fen / 100)), '¥{value}');
    chart('trend-new', {
      grid: { left: 8, right: 16, top: 16, bottom: 8, containLabel: true },
      xAxis: axisLabels(months),
      yAxis: valueAxis(),
      series: [{ type: 'bar', data: trends.months.map((month) => month.new_customers) }],
    });
  }

  function table(selector, headings, rows) {
    const element = $(selector);
    element.replaceChildren();
    const head = element.createTHead().insertRow();
    for (const heading of headings) head.appendChild(document.createElement('th')).textContent = heading;
    const body = element.createTBody();
    for (const row of rows) {
      const line = body.insertRow();
      for (const cell of row) line.insertCell().textContent = cell;
    }
  }

  function drawStaff({ staff }) {
    const top = [...staff.staff].sort((a, b) => b.revenue_fen - a.revenue_fen).slice(0, TOP_ROWS);
    const label = (row) => `${row.staff_id} · ${t(row.role)}`;
    chart('staff', {
      grid: BARS_GRID,
      xAxis: valueAxis('¥{value}'),
      yAxis: { ...axisLabels(top.map(label)), inverse: true },
      series: [{ name: t('revenue'), type: 'bar', data: top.map((row) => row.revenue_fen / 100) }],
    });
    table(
      '#staff-table',
      [t('staffMember'), t('workOrders'), t('revenue'), t('nps'), t('approvalRate')],
      top.map((row) => [label(row), number(row.work_orders), yuan(row.revenue_fen), row.nps ?? '—', percent(row.add_on_approval_rate)]),
    );
  }

  function drawServices({ services }) {
    const top = [...services.items].sort((a, b) => b.revenue_fen - a.revenue_fen).slice(0, TOP_ROWS);
    chart('services', {
      grid: BARS_GRID,
      xAxis: valueAxis('¥{value}'),
      yAxis: { ...axisLabels(top.map((item) => `${item.name} ×${item.count}`)), inverse: true },
      series: [{ name: t('revenue'), type: 'bar', data: top.map((item) => item.revenue_fen / 100) }],
    });
  }

  // Incremental revenue comes with the campaign's control group (campaign-roi's `incremental_revenue_fen`);
  // a campaign without one shows that it has none rather than a zero.
  function drawCampaigns({ campaigns }) {
    const rows = campaigns.campaigns;
    const incremental = (row) => (row.incremental_revenue_fen === undefined ? null : row.incremental_revenue_fen);
    const series = [
      { name: t('cost'), type: 'bar', data: rows.map((row) => row.cost_fen / 100) },
      { name: t('attributedRevenue'), type: 'bar', data: rows.map((row) => row.revenue_fen / 100) },
    ];
    if (rows.some((row) => incremental(row) !== null)) {
      series.push({
        name: t('incrementalRevenue'),
        type: 'bar',
        data: rows.map((row) => (incremental(row) === null ? null : incremental(row) / 100)),
      });
    }
    chart('campaigns', {
      legend: { top: 0 },
      xAxis: axisLabels(rows.map((row) => row.name)),
      yAxis: valueAxis('¥{value}'),
      series,
    });
    table(
      '#campaign-table',
      [t('campaign'), t('recipients'), t('orders'), t('attributedRevenue'), t('roi'), t('incrementalRevenue')],
      rows.map((row) => [
        row.name,
        number(row.recipients),
        number(row.orders),
        yuan(row.revenue_fen),
        row.roi === null ? '—' : percent(row.roi.value),
        incremental(row) === null ? t('noControlGroup') : yuan(incremental(row)),
      ]),
    );
  }

  // A ring of the slices that happened, the rate in its middle (nothing there when nothing happened).
  function pie(name, rate, slices) {
    const happened = slices.filter((slice) => slice.value > 0);
    chart(name, {
      tooltip: { trigger: 'item', renderMode: 'richText' },
      title: { text: happened.length ? rate : '', left: 'center', top: 'center', textStyle: { fontSize: 22 } },
      legend: { bottom: 0 },
      series: [{ type: 'pie', radius: ['45%', '70%'], showEmptyCircle: false, label: { formatter: '{c}' }, data: happened }],
    });
  }

  function drawReminders({ reminders }) {
    const count = (followedBy) => reminders.reminders.filter((row) => row.followed_by === followedBy).length;
    pie('reminders', percent(reminders.effectiveness.value), [
      { name: t('followedByBooking'), value: count('booking') },
      { name: t('followedByVisit'), value: count('visit') },
      { name: t('notFollowed'), value: count(null) },
    ]);
  }

  function drawDeclined({ declined }) {
    const count = (recoveredBy) => declined.add_ons.filter((row) => row.recovered_by === recoveredBy).length;
    pie('declined', percent(declined.by_count.value), [
      { name: t('recoveredApproved'), value: count('approved') },
      { name: t('recoveredPerformed'), value: count('performed') },
      { name: t('notRecovered'), value: count(null) },
    ]);
    $('#declined-by-fen').textContent = t('byFen', {
      recovered: yuan(declined.by_fen.numerator),
      declined: yuan(declined.by_fen.denominator),
      rate: percent(declined.by_fen.value),
    });
  }

  function drawCohorts({ cohorts }) {
    const months = cohorts.cohorts.map((cohort) => `${cohort.month.slice(0, 7)} (${cohort.customers})`);
    const offsets = months.map((_, k) => t('monthsLater', { k }));
    const row = Object.fromEntries(cohorts.cohorts.map((cohort, index) => [cohort.month, index]));
    chart('cohorts', {
      tooltip: { trigger: 'item', renderMode: 'richText' },
      grid: { left: 8, right: 16, top: 8, bottom: 56, containLabel: true },
      xAxis: { ...axisLabels(offsets), splitArea: { show: true } },
      yAxis: { ...axisLabels(months), inverse: true, splitArea: { show: true } },
      visualMap: { min: 0, max: 100, orient: 'horizontal', left: 'center', bottom: 0, itemHeight: 160, text: ['100%', '0%'] },
      series: [
        {
          type: 'heatmap',
          label: { show: true, formatter: ({ value }) => `${Math.round(value[2])}%` },
          data: cohorts.cells.map((cell) => [cell.months_later, row[cell.cohort_month], percentOf(cell.retention)]),
        },
      ],
    });
  }

  function draw() {
    for (const instance of charts) instance.dispose();
    charts = [];
    for (const [name, answer] of Object.entries(answers)) {
      for (const card of $$(`[data-answer="${name}"]`)) {
        card.querySelector('.scope').textContent = scopeOf(answer);
        card.querySelector('.as-of').textContent = asOf(answer);
      }
    }
    for (const drawFigure of [drawHeadline, drawTrends, drawStaff, drawServices, drawCampaigns, drawReminders, drawDeclined, drawCohorts]) {
      drawFigure(answers);
    }
  }

  // ---- the flow ---------------------------------------------------------------------------------------------

  function show({ signIn = false, status = '', figures = false }) {
    $('#sign-in').hidden = !signIn;
    $('#pickers').hidden = signIn;
    $('#sign-out').hidden = signIn;
    $('#status').textContent = status;
    $('#figures').hidden = !figures;
  }

  function signOut(message = '') {
    sessionStorage.removeItem(TOKEN_KEY);
    state.token = null;
    show({ signIn: true, status: message });
    document.body.dataset.state = 'signed-out';
  }

  async function refresh() {
    const load = ++loads;
    document.body.dataset.state = 'loading';
    show({ status: t('loading'), figures: answers !== null });
    try {
      const loaded = await loadAnswers();
      if (load !== loads) return; // the user picked again meanwhile: the later load draws
      answers = loaded;
      show({ figures: true });
      draw();
      document.body.dataset.state = 'ready';
    } catch (error) {
      if (load !== loads) return;
      if (error.status === 401) return signOut(t('expired'));
      show({ status: error.status === 403 ? t('forbidden') : `${t('failed')}${error.message}` });
      document.body.dataset.state = 'failed';
    }
  }

  async function start() {
    try {
      const visible = await get('/v1/branches');
      state.chainWide = visible.chain_wide;
      state.branches = visible.branches;
    } catch (error) {
      if (error.status === 401) return signOut(t('expired'));
      show({ status: `${t('failed')}${error.message}` });
      document.body.dataset.state = 'failed';
      return;
    }
    if (!branchChoices().includes(state.branch)) state.branch = branchChoices()[0] || '';
    fillBranchPicker();
    $('#month').value = state.month;
    $('#span').value = String(state.span);
    writeFragment();
    await refresh();
  }

  function listen() {
    $('#sign-in').addEventListener('submit', (event) => {
      event.preventDefault();
      state.token = $('#token').value.trim();
      sessionStorage.setItem(TOKEN_KEY, state.token);
      $('#token').value = '';
      start();
    });
    $('#sign-out').addEventListener('click', () => signOut());
    $('#language').addEventListener('click', () => {
      state.lang = state.lang === 'en' ? 'zh-CN' : 'en';
      writeFragment();
      applyLanguage();
      if (answers !== null) draw();
    });
    $('#pickers').addEventListener('change', () => {
      if (!$('#month').value) return;
      state.branch = $('#branch').value;
      state.month = $('#month').value;
      state.span = Number($('#span').value);
      writeFragment();
      refresh();
    });
    window.addEventListener('resize', () => charts.forEach((instance) => instance.resize()));
  }

  readFragment();
  applyLanguage();
  listen();
  if (state.token) start();
  else signOut();
})();
