// Every operation the dashboard sends, typed from schema.graphql by GraphQL Code Generator.
import { graphql } from "./gql";

export const ServerInfoQuery = graphql(`
  query DashServerInfo {
    serverInfo { version dataSource database broadcast liveSymbols }
  }
`);

export const MarketsQuery = graphql(`
  query DashMarkets($since: DateTime) {
    assets(first: 20, orderBy: MARKET_CAP_DESC) {
      edges {
        node {
          id symbol name marketCap rank lastPrice lastPriceAt dataSource
          daily: candles(interval: D1, start: $since) { timestamps close }
        }
      }
    }
  }
`);

export const PricesSubscription = graphql(`
  subscription DashPrices($symbols: [String!]!) {
    prices(symbols: $symbols) { symbol price timestamp source }
  }
`);

export const AssetQuery = graphql(`
  query DashAsset($symbol: String!, $benchmark: String) {
    asset(symbol: $symbol) {
      symbol name dataSource lastPrice
      performance(interval: D1) {
        label periodsPerYear riskFreeRate observations start end
        totalReturn cagr volatility sharpe sortino calmar omega maxDrawdown maxDrawdownDuration
        skew kurtosis tailRatio bestPeriod worstPeriod winRate ulcerIndex
        valueAtRisk(level: 0.95) expectedShortfall(level: 0.95)
        calendar { year months total }
        equity { timestamps values }
        drawdownSeries { timestamps values }
        rolling(window: 30, metric: VOLATILITY) { timestamps values }
        benchmark(symbol: $benchmark) {
          symbol observations alpha beta correlation trackingError informationRatio upCapture downCapture
        }
        undefined { metric reason }
      }
    }
  }
`);

export const CandlesQuery = graphql(`
  query DashCandles($symbol: String!, $interval: Interval!, $start: DateTime) {
    asset(symbol: $symbol) {
      candles(interval: $interval, start: $start) { timestamps open high low close }
    }
  }
`);

export const LiveCandlesSubscription = graphql(`
  subscription DashLiveCandles($symbol: String!, $interval: Interval!) {
    candles(symbol: $symbol, interval: $interval) { timestamp open high low close volume closed }
  }
`);

export const AuthFields = graphql(`
  fragment DashAuth on AuthPayload { accessToken refreshToken expiresIn user { id email } }
`);

export const RegisterMutation = graphql(`
  mutation DashRegister($email: String!, $password: String!) {
    register(email: $email, password: $password) {
      __typename
      ... on AuthPayload { ...DashAuth }
      ... on Error { message }
    }
  }
`);

export const LoginMutation = graphql(`
  mutation DashLogin($email: String!, $password: String!) {
    login(email: $email, password: $password) {
      __typename
      ... on AuthPayload { ...DashAuth }
      ... on Error { message }
    }
  }
`);

export const RefreshMutation = graphql(`
  mutation DashRefresh($refreshToken: String!) {
    refreshToken(refreshToken: $refreshToken) {
      __typename
      ... on AuthPayload { ...DashAuth }
      ... on Error { message }
    }
  }
`);

export const LogoutMutation = graphql(`
  mutation DashLogout($refreshToken: String!) {
    logout(refreshToken: $refreshToken)
  }
`);

export const PortfoliosQuery = graphql(`
  query DashPortfolios {
    portfolios(first: 50) { edges { node { id name baseCurrency value } } }
  }
`);

export const CreatePortfolioMutation = graphql(`
  mutation DashCreatePortfolio($name: String!) {
    createPortfolio(input: { name: $name, baseCurrency: "USDT" }) {
      __typename
      ... on Portfolio { id name }
      ... on Error { message }
    }
  }
`);

export const PortfolioQuery = graphql(`
  query DashPortfolio($id: ID!) {
    portfolio(id: $id) {
      id name baseCurrency value cash realizedPnl unrealizedPnl netDeposits feesPaid
      positions { symbol quantity averageCost lastPrice marketValue unrealizedPnl realizedPnl weight }
      transactions { kind asset quantity price fee time }
      valueHistory(interval: D1) { timestamps values }
    }
  }
`);

export const AddTransactionsMutation = graphql(`
  mutation DashAddTransactions($portfolioId: ID!, $transactions: [TransactionInput!]!) {
    addTransactions(portfolioId: $portfolioId, transactions: $transactions) {
      __typename
      ... on Portfolio { id }
      ... on InvalidInput { message field }
      ... on Error { message }
    }
  }
`);

export const ImportTransactionsMutation = graphql(`
  mutation DashImportTransactions($portfolioId: ID!, $file: Upload!) {
    importTransactions(portfolioId: $portfolioId, file: $file) {
      __typename
      ... on Portfolio { id }
      ... on Error { message }
    }
  }
`);

export const PortfolioValueSubscription = graphql(`
  subscription DashPortfolioValue($portfolioId: ID!) {
    portfolioValue(portfolioId: $portfolioId) { timestamp value unrealizedPnl dayChange }
  }
`);

export const RiskQuery = graphql(`
  query DashRisk($symbols: [String!]!, $weights: [Float!]) {
    riskReport(symbols: $symbols, weights: $weights) {
      symbols weights observations volatility diversificationRatio
      valueAtRisk(level: 0.95) expectedShortfall(level: 0.95)
      contributions { symbol weight marginalRisk riskContribution }
      correlation { symbols matrix }
    }
  }
`);

export const OptimizeQuery = graphql(`
  query DashOptimize($symbols: [String!]!, $objective: Objective!) {
    optimize(input: { symbols: $symbols, objective: $objective }) {
      weights { symbol weight }
      expectedReturn volatility sharpe
    }
    efficientFrontier(input: { symbols: $symbols }, points: 20) { expectedReturn volatility sharpe }
  }
`);

export const RebalanceQuery = graphql(`
  query DashRebalance($portfolioId: ID!, $targetWeights: [TargetWeight!]!) {
    rebalance(portfolioId: $portfolioId, targetWeights: $targetWeights) {
      portfolioValue estimatedFees
      trades { symbol side quantity price value estimatedFee currentWeight targetWeight }
    }
  }
`);

export const RunBacktestMutation = graphql(`
  mutation DashRunBacktest($input: BacktestInput!) {
    runBacktest(input: $input) {
      __typename
      ... on Job { id status }
      ... on InvalidInput { message field }
      ... on Error { message }
    }
  }
`);

export const RunSimulationMutation = graphql(`
  mutation DashRunSimulation($runId: ID!) {
    runSimulation(input: { source: { backtestRunId: $runId }, method: BLOCK_BOOTSTRAP, paths: 2000, horizon: 365, blockLength: 10 }) {
      __typename
      ... on Job { id status }
      ... on Error { message }
    }
  }
`);

export const RunSweepMutation = graphql(`
  mutation DashRunSweep($input: StudyInput!) {
    runSweep(input: $input) {
      __typename
      ... on Job { id status }
      ... on InvalidInput { message field }
      ... on Error { message }
    }
  }
`);

export const RunWalkForwardMutation = graphql(`
  mutation DashRunWalkForward($input: StudyInput!) {
    runWalkForward(input: $input) {
      __typename
      ... on Job { id status }
      ... on InvalidInput { message field }
      ... on Error { message }
    }
  }
`);

export const CancelJobMutation = graphql(`
  mutation DashCancelJob($id: ID!) {
    cancelJob(id: $id) { __typename ... on Job { id status } ... on Error { message } }
  }
`);

export const JobProgressSubscription = graphql(`
  subscription DashJobProgress($jobId: ID!) {
    jobProgress(jobId: $jobId) { jobId status progress stage }
  }
`);

export const JobQuery = graphql(`
  query DashJob($id: ID!) {
    job(id: $id) {
      id status progress stage error
      result {
        __typename
        ... on BacktestRun { id }
        ... on SweepRun {
          metric
          best { params metrics { totalReturn sharpe maxDrawdown tradeCount } }
          rows { params metrics { totalReturn sharpe maxDrawdown tradeCount } }
        }
        ... on WalkForwardRun {
          metric decay
          splits {
            trainStart trainEnd testStart testEnd params
            inSample { sharpe totalReturn }
            outOfSample { sharpe totalReturn }
          }
        }
        ... on SimulationRun {
          ruinProbability expectedShortfall99
          maxDrawdownPercentiles { p5 p50 p95 }
          bands { timestamps p5 p25 p50 p75 p95 }
        }
      }
    }
  }
`);

export const RunQuery = graphql(`
  query DashRun($id: ID!) {
    backtestRun(id: $id) {
      id name createdAt
      metrics { totalReturn cagr volatility sharpe sortino calmar maxDrawdown tradeCount winRate exposure }
      equity { timestamps values }
      performance { drawdownSeries { timestamps values } }
      trades(first: 200) { symbol entryTime exitTime entryPrice exitPrice quantity pnl returnPct fees }
    }
  }
`);

export const RegistryQuery = graphql(`
  query DashRegistry {
    backtestRuns(first: 50) {
      edges { node { id name createdAt metrics { totalReturn sharpe maxDrawdown tradeCount } } }
    }
  }
`);

export const CompareQuery = graphql(`
  query DashCompare($ids: [ID!]!) {
    compareBacktests(ids: $ids) {
      id name
      metrics { totalReturn cagr volatility sharpe sortino calmar maxDrawdown tradeCount winRate exposure }
      equity { timestamps values }
    }
  }
`);

export const StrategiesQuery = graphql(`
  query DashStrategies {
    strategies(first: 50) { edges { node { id name } } }
  }
`);

export const CreateStrategyMutation = graphql(`
  mutation DashCreateStrategy($input: StrategyInput!) {
    createStrategy(input: $input) {
      __typename
      ... on Strategy { id name }
      ... on Error { message }
    }
  }
`);

export const BotsQuery = graphql(`
  query DashBots {
    bots(first: 50) {
      edges { node { id name mode status reason symbol interval value cash realizedPnl unrealizedPnl feesPaid } }
    }
  }
`);

export const BotQuery = graphql(`
  query DashBot($id: ID!) {
    bot(id: $id) {
      id name mode status reason symbol interval value cash realizedPnl unrealizedPnl feesPaid
      position { quantity averageCost marketValue unrealizedPnl }
      orders(first: 20) { edges { node { id side type status quantity price filledQuantity averagePrice createdAt } } }
      fills(first: 20) { id side price quantity fee time }
      divergence { backtestReturn botReturn tradesCompared differingTrades differences { index kind detail } }
    }
  }
`);

export const CreateBotMutation = graphql(`
  mutation DashCreateBot($input: CreateBotInput!) {
    createBot(input: $input) {
      __typename
      ... on Bot { id }
      ... on InvalidInput { message field }
      ... on Error { message }
    }
  }
`);

export const BotControlMutation = graphql(`
  mutation DashBotControl($id: ID!, $start: Boolean!, $pause: Boolean!, $stop: Boolean!) {
    startBot(id: $id) @include(if: $start) { __typename ... on Bot { id status } ... on Error { message } }
    pauseBot(id: $id) @include(if: $pause) { __typename ... on Bot { id status } ... on Error { message } }
    stopBot(id: $id) @include(if: $stop) { __typename ... on Bot { id status } ... on Error { message } }
  }
`);

export const EmergencyStopMutation = graphql(`
  mutation DashEmergencyStop($closePositions: Boolean!) {
    emergencyStop(closePositions: $closePositions) {
      __typename
      ... on EmergencyStopResult { botsStopped ordersCancelled positionsClosed }
      ... on Error { message }
    }
  }
`);

export const BotEventsSubscription = graphql(`
  subscription DashBotEvents($botId: ID!) {
    botEvents(botId: $botId) {
      __typename botId timestamp
      ... on OrderEvent { orderId side status price quantity }
      ... on FillEvent { orderId side price quantity fee }
      ... on BotStatusEvent { status reason }
      ... on BotValueEvent { value unrealizedPnl }
    }
  }
`);

export const AlertsQuery = graphql(`
  query DashAlerts {
    alerts(first: 50) { portfolioId limit observed threshold triggeredAt }
  }
`);

export const AlertsSubscription = graphql(`
  subscription DashRiskAlerts {
    riskAlerts { portfolioId limit observed threshold triggeredAt }
  }
`);

export const ApiKeysQuery = graphql(`
  query DashApiKeys {
    apiKeys { id name prefix scopes createdAt lastUsedAt }
  }
`);

export const CreateApiKeyMutation = graphql(`
  mutation DashCreateApiKey($name: String!, $scopes: [ApiScope!]!) {
    createApiKey(input: { name: $name, scopes: $scopes }) {
      __typename
      ... on CreatedApiKey { key apiKey { id } }
      ... on Error { message }
    }
  }
`);

export const RevokeApiKeyMutation = graphql(`
  mutation DashRevokeApiKey($id: ID!) {
    revokeApiKey(id: $id) { __typename ... on Error { message } }
  }
`);
